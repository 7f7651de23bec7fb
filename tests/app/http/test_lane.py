"""The hot path against the router: the same requests, the same answers (timings removed)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.http.factory import create_app
from app.http.lane import PredictLane
from tests.helpers import bomb_png, make_settings

# (query, multipart files or raw body, headers): answers, the 4xx errors, the key's 401.
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("", {"files": {"image": ("b.png", "BOOT")}}),
    ("?top_k=10&explain=true", {"files": {"image": ("b.png", "BOOT")}}),
    ("?explain=0", {"content": "BOOT", "headers": {"content-type": "image/png"}}),
    ("?top_k=0", {"files": {"image": ("b.png", "BOOT")}}),
    ("?explain=maybe", {"files": {"image": ("b.png", "BOOT")}}),
    ("?model=nope", {"files": {"image": ("b.png", "BOOT")}}),
    ("", {"files": {"photo": ("b.png", "BOOT")}}),
    ("", {"files": {"image": ("b.png", b"not an image")}}),
    ("", {"files": {"image": ("b.png", "BOMB")}}),
    ("", {"content": b"{}", "headers": {"content-type": "application/json"}}),
    ("", {"files": {"image": ("b.png", "BOOT")}, "headers": {"x-api-key": "wrong"}}),
]


def _filled(kwargs: dict[str, Any], boot_png: bytes) -> dict[str, Any]:
    """kwargs with the placeholders BOOT and BOMB replaced by the images."""
    images = {"BOOT": boot_png, "BOMB": bomb_png(100_000, 100_000)}
    out = dict(kwargs)
    if "files" in out:
        out["files"] = {k: (n, images.get(v, v)) for k, (n, v) in out["files"].items()}
    if "content" in out:
        out["content"] = images.get(out["content"], out["content"])
    return out


def _answer(r: Any) -> tuple[int, dict[str, str], Any]:
    """Status, headers but length and date, and the body without its timings."""
    headers = {k: v for k, v in r.headers.items() if k not in ("content-length", "date")}
    body = r.json()
    if isinstance(body, dict):
        body.pop("timing_ms", None)
    return r.status_code, headers, body


@pytest.fixture(scope="module")
def app(tiny_checkpoint: Path) -> Iterator[FastAPI]:
    application = create_app(make_settings(tiny_checkpoint, API_KEY="k"))
    yield application


def test_the_lane_takes_predict_and_answers_as_the_router(app: FastAPI, boot_png: bytes) -> None:
    lane = app.router.middleware_stack
    assert isinstance(lane, PredictLane)
    taken = []
    endpoint = lane.endpoint

    async def counted(request: Any, services: Any) -> Any:
        taken.append(request.url.path)
        return await endpoint(request, services)

    lane.endpoint = counted
    with TestClient(app) as client:
        client.headers["x-api-key"] = "k"

        def session() -> list[tuple[int, dict[str, str], Any]]:
            return [
                _answer(client.post("/predict" + query, **_filled(kwargs, boot_png)))
                for query, kwargs in REQUESTS
            ]

        by_lane = session()
        app.router.middleware_stack = lane.app  # the router alone
        by_router = session()
        metrics = client.get("/metrics").text
    app.router.middleware_stack = lane
    assert by_lane == by_router
    # The key's 401 never reaches the lane; every other request did, once.
    assert len(taken) == len(REQUESTS) - 1
    statuses = [status for status, _, _ in by_lane]
    assert statuses == [200, 200, 200, 422, 422, 404, 422, 415, 413, 415, 401]
    assert by_lane[0][1]["cache-control"] == "no-store"  # the middlewares' headers
    # Counted under the route's template, as the router's requests are (3 answers x 2 sessions).
    assert 'fashion_requests_total{method="POST",route="/predict",status="200"} 6.0' in metrics


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/predict", 405), ("POST", "/predict/", 307), ("POST", "/predictx", 404)],
)
def test_the_router_keeps_what_the_lane_does_not_take(
    client: TestClient, method: str, path: str, status: int
) -> None:
    r = client.request(method, path, follow_redirects=False)
    assert r.status_code == status
