import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("path", ["/health/live", "/metrics", "/model", "/openapi.json", "/docs"])
def test_every_answer_is_nosniff(client: TestClient, path: str) -> None:
    assert client.get(path).headers["x-content-type-options"] == "nosniff"


def test_predictions_are_not_stored_by_caches(client: TestClient, boot_png: bytes) -> None:
    ok = client.post("/predict", files={"image": ("b.png", boot_png)})
    bad = client.post("/predict", files={"image": ("b.png", b"not an image")})
    pixels = {"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8",
                          "data": [0] * 784}]}  # fmt: skip
    v2 = client.post("/v2/models/d2l-resnet18/infer", json=pixels)
    assert v2.status_code == 200
    assert ok.headers["cache-control"] == bad.headers["cache-control"] == "no-store"
    assert v2.headers["cache-control"] == "no-store"
    assert "cache-control" not in client.get("/health/live").headers
