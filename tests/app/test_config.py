from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.http.factory import create_app
from model.network.checkpoint import SHIPPED_CHECKPOINT
from tests.helpers import make_settings


def test_env_vars_fill_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "MODEL_CHECKPOINT": str(tmp_path / "m.safetensors"),
        "MODEL_DEVICE": "cpu",
        "MAX_BATCH_SIZE": "16",
        "MAX_WAIT_MS": "5",
        "QUEUE_SIZE": "99",
        "REQUEST_TIMEOUT_S": "2.5",
        "MAX_UPLOAD_MB": "1.5",
        "DEFAULT_TOP_K": "5",
        "CORS_ORIGINS": "http://a.example, http://b.example",
        "API_KEY": "k",
        "MODEL_BACKEND": "torch",
        "INFERENCE_THREADS": "3",
        "MODEL_PRECISION": "bf16",
        "FOLD_BATCH_NORM": "false",
        "CHANNELS_LAST": "0",
        "TORCH_COMPILE": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.model_checkpoint == tmp_path / "m.safetensors" and s.model_device == "cpu"
    assert (s.max_batch_size, s.max_wait_ms, s.queue_size, s.default_top_k) == (16, 5.0, 99, 5)
    assert s.max_upload_bytes == int(1.5 * 1024 * 1024) and s.request_timeout_s == 2.5
    assert s.cors_origins == ["http://a.example", "http://b.example"]
    assert s.api_key is not None and s.api_key.get_secret_value() == "k"
    assert (s.model_backend, s.inference_threads, s.model_precision) == ("torch", 3, "bf16")
    assert (s.fold_batch_norm, s.channels_last, s.torch_compile) == (False, False, True)


def test_torch_threads_still_sets_the_inference_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_THREADS", "2")
    assert Settings(_env_file=None).inference_threads == 2  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "value"),
    [("DEFAULT_TOP_K", "11"), ("QUEUE_SIZE", "0"), ("MODEL_BACKEND", "tensorrt")],
)
def test_out_of_range_settings_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name.lower()):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_cors_origins_are_allowed(tiny_checkpoint: Path) -> None:
    settings = make_settings(tiny_checkpoint, cors_origins=["http://ui.example"])
    with TestClient(create_app(settings)) as c:
        r = c.options(
            "/predict",
            headers={"Origin": "http://ui.example", "Access-Control-Request-Method": "POST"},
        )
        assert r.headers["access-control-allow-origin"] == "http://ui.example"
        r = c.get("/health/live", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_empty_env_vars_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_CHECKPOINT", "")
    monkeypatch.setenv("MAX_BATCH_SIZE", "")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.model_checkpoint == SHIPPED_CHECKPOINT and s.max_batch_size is None
