"""The page at / in real headless Chromium: photos in through its file input, the answer, the
28x28 the network saw and the bars out, with no console error and nothing refused by its policy."""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from benchmarks.model_swap import install
from model.network.checkpoint_info import SHIPPED_CHECKPOINT
from tests.helpers import ROOT, bomb_png, served

pytestmark = pytest.mark.slow  # Chromium

PHOTOS = [ROOT / "examples" / "sneakers.jpg", ROOT / "examples" / "boot.jpg"]
KEY = "page-test-key"


def api_answer(url: str, path: Path, key: str | None = None) -> tuple[int, dict[str, Any]]:
    """The status and JSON /predict gives for a file, as curl -F image=@file sends it."""
    boundary = "pagetestboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if key:
        headers["X-API-Key"] = key
    request = urllib.request.Request(f"{url}/predict?top_k=5", body, headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


class Watched:
    """A page and what went wrong on it: console errors, uncaught exceptions, CSP refusals."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page(viewport={"width": 1000, "height": 860})
        self.problems: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(m.text)
                if m.type == "error" or "Content Security" in m.text
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(str(e)))

    def card(self, name: str) -> Any:
        return self.page.locator(".card", has=self.page.locator(".name", has_text=name))

    def wait_done(self, name: str) -> Any:
        """The card of file `name` once it shows an answer or an error."""
        card = self.card(name)
        card.locator(".bars li, .error:not([hidden])").first.wait_for(timeout=30_000)
        return card


@pytest.fixture
def watched(chromium: Any) -> Iterator[Watched]:
    yield Watched(chromium)


def check_answer(w: Watched, url: str, photo: Path, key: str | None = None) -> None:
    """The card of `photo` says what /predict says of it, draws the 28x28, and sizes its bars
    by the probabilities."""
    status, expected = api_answer(url, photo, key)
    assert status == 200, expected
    card = w.wait_done(photo.name)
    assert card.locator(".label").inner_text() == expected["label"]
    # The 28x28 canvas has pixels drawn (its image loads after the answer arrives).
    seen = card.locator("canvas.seen")
    lit = "c => { const d = c.getContext('2d').getImageData(0, 0, 28, 28).data; "
    lit += "let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 0; return n; }"
    w.page.wait_for_function(f"c => ({lit})(c) > 0", arg=seen.element_handle(), timeout=10_000)
    assert seen.evaluate(lit) > 20
    # Each bar's width over its track is the probability it shows, in /predict's order.
    bars = card.locator(".fill")
    assert bars.count() == len(expected["top_k"])
    for i, score in enumerate(expected["top_k"]):
        fill = bars.nth(i)
        shown = float(fill.get_attribute("data-probability") or "nan")
        assert shown == pytest.approx(score["probability"], abs=1e-6)
        width = fill.bounding_box()["width"]
        track = card.locator(".track").nth(i).bounding_box()["width"]
        assert width / track == pytest.approx(score["probability"], abs=0.01)


def test_page_shows_what_predict_answers_and_writes_the_screenshot(
    shipped_server: str, watched: Watched, tmp_path: Path
) -> None:
    w = watched
    w.page.goto(shipped_server + "/")
    w.page.locator("#files").set_input_files([str(p) for p in PHOTOS])
    for photo in PHOTOS:
        check_answer(w, shipped_server, photo)
    # The saliency overlay sits over the part of the photo the network saw.
    overlay = w.card(PHOTOS[0].name).locator(".photo-overlay").bounding_box()
    photo = w.card(PHOTOS[0].name).locator(".photo").bounding_box()
    assert overlay["width"] > 0.2 * photo["width"]
    assert w.page.locator(".card").count() == 2
    assert w.page.locator("#model-pick").is_hidden()  # one model: nothing to pick
    # A small PNG for README: 64 colours are plenty for a page of flat colours and thumbnails.
    shot = Image.open(io.BytesIO(w.page.screenshot())).convert("RGB").quantize(64)
    shot.save(os.environ.get("PAGE_SCREENSHOT", str(tmp_path / "page.png")), optimize=True)
    assert w.problems == []


def test_page_asks_for_the_api_key_and_keeps_it_in_session_storage(
    watched: Watched, tmp_path: Path
) -> None:
    with served(SHIPPED_CHECKPOINT, tmp_path / "server.log", API_KEY=KEY) as server:
        w = watched
        w.page.goto(server.url + "/")
        w.page.locator("#files").set_input_files(str(PHOTOS[1]))
        key_field = w.page.get_by_label("This service needs an API key:")
        key_field.wait_for(timeout=30_000)
        key_field.fill(KEY)
        w.page.get_by_role("button", name="Use key").click()
        check_answer(w, server.url, PHOTOS[1], key=KEY)
        stored = w.page.evaluate("[sessionStorage.length, localStorage.length, document.cookie]")
        assert stored == [1, 0, ""]
        # The page's first try went without the key and was refused: that is the console's one
        # error, the browser's note of the 401.
        assert all("401" in p for p in w.problems), w.problems


def test_with_several_models_the_page_offers_a_picker(watched: Watched, tmp_path: Path) -> None:
    root = tmp_path / "repository"
    root.mkdir()
    for name in ("fashion", "other"):
        install(SHIPPED_CHECKPOINT, root, name, 1)
    env = {"MODEL_REPOSITORY": str(root), "DEFAULT_MODEL": "fashion"}
    with served(SHIPPED_CHECKPOINT, tmp_path / "server.log", **env) as server:
        w = watched
        w.page.goto(server.url + "/")
        picker = w.page.get_by_label("Model")
        picker.wait_for(timeout=30_000)
        options = picker.locator("option").all_inner_texts()
        assert options == ["fashion", "other"] and picker.input_value() == "fashion"
        picker.select_option("other")
        w.page.locator("#files").set_input_files(str(PHOTOS[1]))
        card = w.wait_done(PHOTOS[1].name)
        assert "model other version 1" in card.locator(".timing").inner_text()
        assert w.problems == []


def bad_files(tmp_path: Path) -> list[Path]:
    files = {
        "paper.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n",
        "empty.png": b"",
        "huge.png": bomb_png(20_000, 20_000),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return [tmp_path / name for name in files]


def test_bad_files_show_the_apis_message_and_the_page_stays_usable(
    live_server: str, watched: Watched, tmp_path: Path
) -> None:
    w = watched
    w.page.goto(live_server + "/")
    for bad in bad_files(tmp_path):
        status, expected = api_answer(live_server, bad)
        assert 400 <= status < 500
        w.page.locator("#files").set_input_files(str(bad))
        card = w.wait_done(bad.name)
        assert card.locator(".error").inner_text() == f"{expected['detail']} (HTTP {status})"
    # Still usable: a good photo after them gets its answer.
    w.page.locator("#files").set_input_files(str(PHOTOS[0]))
    check_answer(w, live_server, PHOTOS[0])
    # Only the browser's notes of the refused requests, no script error.
    assert all("status of 4" in p for p in w.problems), w.problems


def test_narrow_screens_and_the_keyboard(live_server: str, chromium: Any) -> None:
    """On a phone-wide screen nothing runs off the side; Tab reaches the photo chooser first,
    and every control has a label."""
    page = chromium.new_page(viewport={"width": 360, "height": 740})
    page.goto(live_server + "/")
    page.locator("#files").set_input_files([str(p) for p in PHOTOS])
    page.locator(".card .bars li").first.wait_for(timeout=30_000)
    page.locator(".card .bars li").last.wait_for(timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.keyboard.press("Tab")  # the link to the API docs
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "files"
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input')].filter(i => !i.labels.length).map(i => i.id)"
    )
    assert unlabelled == []
    assert all(page.locator(".photo").evaluate_all("els => els.map(e => e.alt)"))
