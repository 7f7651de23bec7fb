from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import make_settings

KEY = "s3cret-key"


@pytest.fixture
def locked(tiny_checkpoint: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(tiny_checkpoint, api_key=KEY))) as c:
        yield c


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Bearer {KEY}"}, 200),
        ({"X-API-Key": KEY}, 200),
        ({"X-API-Key": KEY, "Authorization": "Bearer wrong"}, 401),
        ({"X-API-Key": "wrong", "Authorization": f"Bearer {KEY}"}, 401),
        ({"X-API-Key": KEY, "Authorization": f"Basic {KEY}"}, 401),
        ({"X-API-Key": KEY, "Authorization": ""}, 401),
        ({"X-API-Key": KEY, "Authorization": f"Bearer {KEY}"}, 200),
    ],
)
def test_predict_needs_the_key(
    locked: TestClient, boot_png: bytes, headers: dict[str, str], status: int
) -> None:
    for path, field in (("/predict", "image"), ("/predict/batch", "images")):
        r = locked.post(path, files={field: ("b.png", boot_png)}, headers=headers)
        assert r.status_code == status, r.text
        if status == 401:
            assert "API key" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/model", "/model/summary", "/model/summary?depth=2"])
@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-API-Key": KEY}, 200)])
def test_model_routes_need_the_key(
    locked: TestClient, path: str, headers: dict[str, str], status: int
) -> None:
    assert locked.get(path, headers=headers).status_code == status


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/metrics", "/docs"])
def test_health_docs_and_metrics_stay_open(locked: TestClient, path: str) -> None:
    assert locked.get(path).status_code == 200


def test_without_a_key_configured_predict_is_open(client: TestClient, boot_png: bytes) -> None:
    assert client.post("/predict", files={"image": ("b.png", boot_png)}).status_code == 200
