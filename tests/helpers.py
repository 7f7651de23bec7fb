"""Helpers shared by the tests: paths, tiny sizes, image makers, settings, ports.

Fixtures live in conftest.py; plain functions and constants live here, so no test module imports
from another.
"""

from __future__ import annotations

import io
import os
import socket
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.config import Settings

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


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header that declares huge dimensions, with almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def make_settings(checkpoint: Path, **overrides: object) -> Settings:
    """Settings for a test app, ignoring any env or .env of the machine running the tests."""
    return Settings(_env_file=None, model_checkpoint=checkpoint, **overrides)  # type: ignore[call-arg]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
