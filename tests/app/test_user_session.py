"""The service as users run it: a real server process (`make serve`), real curl."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from model.images.decode import decode_image
from model.images.silhouette import photo_to_fashion_mnist, to_model_input
from model.network.checkpoint import load_checkpoint
from tests.helpers import REAL_PHOTOS, ROOT, free_port, needs_real_photos

pytestmark = pytest.mark.slow  # a real server process driven by curl


def test_literal_curl_upload(
    live_server: str, tiny_checkpoint: Path, tmp_path: Path, boot_png: bytes
) -> None:
    shoe = tmp_path / "shoe.png"
    shoe.write_bytes(boot_png)
    proc = subprocess.run(
        f"curl -s -w '\\n%{{http_code}}' -F image=@{shlex.quote(str(shoe))} {live_server}/predict",
        shell=True, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    text, status = proc.stdout.rsplit("\n", 1)
    body = json.loads(text)
    # The class the served checkpoint gives this image, computed here without the service.
    ckpt = load_checkpoint(tiny_checkpoint)
    x = to_model_input(
        torch.from_numpy(photo_to_fashion_mnist(decode_image(boot_png)))[None],
        28,
        ckpt.mean,
        ckpt.std,
    )
    with torch.no_grad():
        expected = int(ckpt.model(x).argmax(1))
    assert status == "200" and body["device"] == "cpu"
    assert (body["class_id"], body["label"]) == (expected, ckpt.class_names[expected])


@needs_real_photos
def test_real_photo_through_curl(live_server: str) -> None:
    photo = REAL_PHOTOS / "0_tshirt_top" / "sol_dark_tee_transparent_bg.png"
    out = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", "-F", f"image=@{photo}", f"{live_server}/predict"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    body, status = out.rsplit("\n", 1)
    assert status == "200" and json.loads(body)["class_id"] in range(10)


def test_server_survives_garbage_and_keeps_serving(live_server: str, boot_png: bytes) -> None:
    with httpx.Client(base_url=live_server, timeout=30) as c:
        for payload in (b"", b"\x00" * 1000, b"GIF89a" + b"\xff" * 100, boot_png[:50]):
            r = c.post("/predict", files={"image": ("x.png", payload)})
            assert 400 <= r.status_code < 500 and "detail" in r.json()
        assert c.post("/predict", files={"image": ("b.png", boot_png)}).status_code == 200
        assert c.get("/health/ready").status_code == 200


def test_bad_checkpoint_exits_non_zero_with_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    (tmp_path / "broken.json").write_text("{}")
    env = {**os.environ, "MODEL_CHECKPOINT": str(bad)}
    cmd = [sys.executable, "-m", "app.serve", "--port", str(free_port())]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("fashion-resnet: cannot start: checkpoint")
    assert "architecture None" in lines[-1]
    assert "Traceback" not in proc.stderr
