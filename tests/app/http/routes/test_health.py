import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.http.factory import create_app
from tests.helpers import make_settings


def test_not_ready_until_the_model_is_loaded(tiny_checkpoint: Path, boot_png: bytes) -> None:
    app = create_app(make_settings(tiny_checkpoint))
    cold = TestClient(app)  # no lifespan yet: nothing loaded onto the device or warmed up
    assert cold.get("/health/live").json() == {"status": "alive"}
    r = cold.get("/health/ready")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert cold.post("/predict", files={"image": ("b.png", boot_png)}).status_code == 503
    with TestClient(app) as warm:
        r = warm.get("/health/ready")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        assert r.json()["device"] == "cpu"
    assert TestClient(app).get("/health/ready").status_code == 503  # after shutdown


def test_metrics_count_requests_stages_batches_and_queue(
    client: TestClient, boot_png: bytes
) -> None:
    for _ in range(3):
        client.post("/predict", files={"image": ("b.png", boot_png)})
    client.post("/predict", files={"image": ("b.txt", b"text")})
    client.get("/nope")
    text = client.get("/metrics").text
    assert 'fashion_requests_total{method="POST",route="/predict",status="200"} 3.0' in text
    assert 'fashion_requests_total{method="POST",route="/predict",status="415"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    for stage in ("decode", "preprocess", "queue", "inference"):
        assert f'fashion_stage_duration_seconds_count{{stage="{stage}"}} 3.0' in text
    # The model's series carry its name and version; the queue's total has none.
    labels = '{model="d2l-resnet18",version="1"}'
    batches = re.search(rf"^fashion_batch_size_sum{re.escape(labels)} (\S+)$", text, re.M)
    assert batches and float(batches.group(1)) == 3.0
    assert "fashion_queue_depth 0.0" in text and f"fashion_model_queue_depth{labels} 0.0" in text


@pytest.mark.parametrize("path", ["/nope", "/predict/none"])
def test_unknown_routes_are_json_404(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404 and set(r.json()) == {"detail"}


def test_missing_checkpoint_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        create_app(make_settings(tmp_path / "nope.safetensors"))
    assert str(exc.value) == (
        f"fashion-resnet: cannot start: checkpoint file not found: {tmp_path / 'nope.safetensors'}"
    )


def test_cuda_asked_without_cuda_stops_start_up(tiny_checkpoint: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit, match="no CUDA device"):
        create_app(make_settings(tiny_checkpoint, model_device="cuda"))
