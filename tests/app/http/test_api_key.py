from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.http.factory import create_app
from tests.helpers import make_settings

KEY = "s3cret-key"


@pytest.fixture(scope="module")
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


def _operations(client: TestClient) -> list[tuple[str, str, bool]]:
    """(method, concrete path, declares security) of every operation in the OpenAPI document,
    path parameters filled with their one valid value."""
    doc = client.get("/openapi.json").json()
    out = []
    for template, item in doc["paths"].items():
        for method, op in item.items():
            path = template
            for param in op.get("parameters", []):
                if param["in"] == "path":
                    path = path.replace("{" + param["name"] + "}", param["schema"]["default"])
            out.append((method.upper(), path, "security" in op))
    return out


def test_every_protected_route_refuses_a_missing_key_and_only_those(locked: TestClient) -> None:
    """The document and the guard agree on every route, /v2 included: an operation that
    declares security answers 401 without the key and something else with it; the others never
    ask for one."""
    operations = _operations(locked)
    protected = {path for _, path, secured in operations if secured}
    assert {"/predict", "/predict/batch", "/model", "/model/summary"} <= protected
    assert any(p.startswith("/v2/models/") and p.endswith("/infer") for p in protected)
    for method, path, secured in operations:
        without = locked.request(method, path)
        with_key = locked.request(method, path, headers={"X-API-Key": KEY})
        if secured:
            assert without.status_code == 401, (method, path)
            assert with_key.status_code != 401, (method, path)
        else:
            assert without.status_code != 401, (method, path)
