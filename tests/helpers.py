"""Helpers shared by the tests: paths, tiny sizes, image makers, settings, ports.

Fixtures live in conftest.py; plain functions and constants live here, so no test module imports
from another.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from PIL import Image

from app.config import Settings
from benchmarks._net import free_port, wait_until_ready

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
# Labelled photos beside the checkout (CI has them; a user's clone has not): tests that need
# them skip, saying so, when they are absent. The variables point elsewhere.
REAL_PHOTOS = Path(os.environ.get("REAL_PHOTOS", ROOT.parent / "shared" / "real-photos"))
CLOTHING_PHOTOS = Path(
    os.environ.get("CLOTHING_PHOTOS", ROOT.parent / "shared" / "clothing-photos")
)
needs_real_photos = pytest.mark.skipif(
    not (REAL_PHOTOS / "labels.csv").is_file(),
    reason=f"no labelled product photos at {REAL_PHOTOS} (set REAL_PHOTOS to their folder)",
)
needs_clothing_photos = pytest.mark.skipif(
    not (CLOTHING_PHOTOS / "labels.csv").is_file(),
    reason=f"no labelled clothing photos at {CLOTHING_PHOTOS} (set CLOTHING_PHOTOS to them)",
)
# Debian's Chromium, which the browser tests drive through Playwright.
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The service's decoding program, except that an upload starting with CRASH kills it (SIGKILL,
# as the OOM killer would): `python -c CRASHING_WORKER MAX_PIXELS`.
CRASHING_WORKER = """
import os, signal, sys
from app.serving import photo_worker
real = photo_worker.answer
def answer(data, max_pixels):
    if data.startswith(b"CRASH"):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(data, max_pixels)
photo_worker.answer = answer
photo_worker.serve(int(sys.argv[1]), sys.stdin.buffer, sys.stdout.buffer)
"""
# Small enough that the real CLI trains and evaluates in seconds on two cores.
TINY_TRAIN = 512
TINY_TEST = 256

# d2l's printed shapes for a (1, 1, 224, 224) input, one row per top-level layer.
SEED_SHAPES_224 = [
    ("Sequential", (1, 64, 56, 56)),
    ("Sequential", (1, 64, 56, 56)),
    ("Sequential", (1, 128, 28, 28)),
    ("Sequential", (1, 256, 14, 14)),
    ("Sequential", (1, 512, 7, 7)),
    ("AdaptiveAvgPool2d", (1, 512, 1, 1)),
    ("Flatten", (1, 512)),
    ("Linear", (1, 10)),
]


def png_bytes(array: np.ndarray | Image.Image, fmt: str = "PNG", **save: object) -> bytes:
    """Encode a uint8 array (or a Pillow image) as an image file."""
    img = array if isinstance(array, Image.Image) else Image.fromarray(array)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header that declares huge dimensions, with almost no pixel data."""
    chunk = _png_chunk
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def text_bomb_png(megabytes: int = 50) -> bytes:
    """A valid 28x28 PNG carrying a zTXt chunk that inflates to `megabytes` MB (a ~50 KB file)."""
    plain = png_bytes(np.zeros((28, 28), np.uint8))
    text = b"comment\0\0" + zlib.compress(b"a" * megabytes * 1_000_000, 9)
    return plain[:33] + _png_chunk(b"zTXt", text) + plain[33:]  # after the 33-byte IHDR


def object_photo(dark_on_light: bool, size: tuple[int, int] = (120, 200)) -> np.ndarray:
    """A w x h photo with a 40x100 object (a 'trouser') left of centre."""
    w, h = size
    bg, fg = (235, 40) if dark_on_light else (20, 200)
    a = np.full((h, w), bg, dtype=np.uint8)
    a[50:150, 20:60] = fg
    return a


def poll(probe: Callable[[], T], seconds: float = 60.0, every: float = 0.01) -> T:
    """probe()'s first truthy value, asked every `every` seconds; fails after `seconds` (a
    condition waited for, not a sleep standing in for it)."""
    deadline = time.monotonic() + seconds
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds:g} s")
        time.sleep(every)
    return value


def random_checkpoint(path: Path, seed: int) -> Path:
    """A random-weight (Xavier) checkpoint at the native 28x28 input size; its weights path."""
    import torch

    from model.data.fashion_mnist import CLASS_NAMES, MEAN, STD
    from model.export import write_graphs
    from model.network.checkpoint import load_checkpoint, save_checkpoint
    from model.network.net import init_xavier, resnet18

    torch.manual_seed(seed)
    model = resnet18()
    init_xavier(model)
    weights = save_checkpoint(
        path, model, class_names=CLASS_NAMES, input_size=28, mean=MEAN, std=STD
    )
    write_graphs(load_checkpoint(weights))  # once here, not in every app that serves a copy
    return weights


def put_version(src: Path, root: Path, name: str, version: int) -> Path:
    """The checkpoint at src, with the ONNX graphs beside it, as version `version` of model
    `name` in the model repository at root; the new weights path."""
    from model.network.checkpoint import copy_checkpoint
    from model.network.checkpoint_info import graph_file

    weights = copy_checkpoint(src, root / name / str(version) / "model")
    for precision in ("fp32", "int8"):
        if graph_file(src, precision).is_file():
            shutil.copyfile(graph_file(src, precision), graph_file(weights, precision))
    return weights


def make_settings(checkpoint: Path, **overrides: object) -> Settings:
    """Settings for a test app, ignoring any env or .env of the machine running the tests."""
    return Settings(_env_file=None, model_checkpoint=checkpoint, **overrides)  # type: ignore[call-arg]


def write_photo_folder(root: Path, per_folder: int = 10, seed: int = 0) -> Path:
    """A small labelled photo folder like ../shared/clothing-photos: JPEGs of light or dark
    shapes on textured backgrounds, and labels.csv with class sets (and none for hats)."""
    rng = np.random.default_rng(seed)
    kinds = {"t-shirt": "0", "shoes": "5|7|9", "longsleeve": "2|6", "hat": ""}
    rows = ["file,folder,fashion_mnist_classes"]
    for folder, classes in kinds.items():
        (root / "train" / folder).mkdir(parents=True, exist_ok=True)
        for i in range(per_folder):
            a = rng.integers(150, 200, (96, 80, 3), dtype=np.uint8)
            y0, x0 = rng.integers(10, 30, 2)
            a[y0 : y0 + 50, x0 : x0 + 30] = rng.integers(0, 90, 3, dtype=np.uint8)
            name = f"train/{folder}/{folder}-{i:03d}.jpg"
            (root / name).write_bytes(png_bytes(a, fmt="JPEG", quality=90))
            rows.append(f"{name},{folder},{classes}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@dataclass
class Server:
    """A running `python -m app.serve`: its base URL, process and log file."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def served(
    checkpoint: Path, log: Path, *, without: tuple[str, ...] = (), **env: str
) -> Iterator[Server]:
    """The service as `make serve` runs it, on a free port, with these settings (env vars);
    its output goes to `log`. Yields once /health/ready answers; stops it after. `without`:
    packages the server process cannot import (torch, as in the CPU image)."""
    port = free_port()
    environ = {**os.environ, "MODEL_CHECKPOINT": str(checkpoint), "LOG_LEVEL": "info", **env}
    args = ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    cmd = [sys.executable, "-m", "app.serve", *args]
    if without:
        run = (f"import runpy, sys; sys.modules.update(dict.fromkeys({without!r})); "
               f"sys.argv = ['app.serve', *{args!r}]; runpy.run_module('app.serve', "
               "run_name='__main__', alter_sys=True)")  # fmt: skip
        cmd = [sys.executable, "-c", run]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        try:
            wait_until_ready(proc, f"{server.url}/health/ready", timeout_s=60)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}: {server.log_text()}") from None
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
