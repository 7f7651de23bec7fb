"""Swagger UI in real headless Chromium: open /docs, upload a photo with "Try it out"."""

import os
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow  # Chromium


def test_swagger_try_it_out_upload_returns_200(
    live_server: str, tmp_path: Path, boot_png: bytes, chromium: Any
) -> None:
    shoe = tmp_path / "shoe.png"
    shoe.write_bytes(boot_png)
    page = chromium.new_page(viewport={"width": 1280, "height": 2000})
    blocked: list[str] = []  # what the pages' Content-Security-Policy refused
    page.on(
        "console",
        lambda m: blocked.append(m.text) if "Content Security" in m.text else None,
    )
    page.goto(f"{live_server}/redoc")
    page.locator("h2", has_text="Classify one clothing photo").wait_for(timeout=30_000)
    page.goto(f"{live_server}/docs")
    op = page.locator("#operations-predict-predict_predict_post")
    op.locator(".opblock-summary").click()
    op.get_by_role("button", name="Try it out").click()
    op.locator("input[type=file]").set_input_files(str(shoe))
    op.get_by_role("button", name="Execute").click()
    live = op.locator(".live-responses-table tbody .response-col_status")
    live.wait_for(timeout=30_000)
    body = op.locator(".live-responses-table .microlight").first.inner_text()
    page.screenshot(path=os.environ.get("DOCS_SCREENSHOT", str(tmp_path / "docs.png")))
    assert live.inner_text().strip() == "200"
    assert '"label"' in body and '"top_k"' in body
    # ReDoc's footer logo is the one thing from elsewhere (its CDN, which an offline
    # deployment cannot reach anyway); nothing of the pages' own may be refused.
    assert [m for m in blocked if "https://cdn.redoc.ly/" not in m] == [], blocked


def test_swagger_lists_v2_under_its_tag_and_runs_its_example(
    live_server: str, chromium: Any
) -> None:
    """The Open Inference Protocol routes have their own section; 'Try it out' on inference
    sends the documented example (a blank 28x28 pixels tensor) to the one model offered."""
    page = chromium.new_page(viewport={"width": 1280, "height": 2000})
    page.goto(f"{live_server}/docs")
    tag = page.locator(".opblock-tag", has_text="open inference protocol (v2)")
    tag.wait_for(timeout=30_000)
    section = page.locator(".opblock-tag-section", has=tag)
    assert section.locator(".opblock").count() == 12
    op = section.locator(".opblock-post", has_text="/v2/models/{model_name}/infer").first
    op.locator(".opblock-summary").click()
    op.get_by_role("button", name="Try it out").click()
    # The served model is the path parameter's one choice, selected already.
    assert op.locator("select").first.input_value() == "d2l-resnet18"
    op.get_by_role("button", name="Execute").click()
    live = op.locator(".live-responses-table tbody .response-col_status")
    live.wait_for(timeout=30_000)
    body = op.locator(".live-responses-table .microlight").first.inner_text()
    assert live.inner_text().strip() == "200", body
    assert '"model_name"' in body and '"label"' in body
