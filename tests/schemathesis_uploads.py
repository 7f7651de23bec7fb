"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.schemathesis_uploads): what a `format: binary`
upload field holds when schemathesis fuzzes the service.

By default it sends one 1x1 PNG or random bytes. Here: real images in every format and mode the
service reads (a Fashion-MNIST-like PNG, a real product photo when the shared photos are beside
the checkout, generated photos of random size, mode and format), images that must be refused
(a decompression bomb, a PNG whose metadata inflates to 50 MB, truncated files) and garbage.
"""

from __future__ import annotations

import io

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image

from tests.helpers import REAL_PHOTOS, bomb_png, png_bytes, text_bomb_png

FORMATS = {
    "PNG": ("L", "LA", "RGB", "RGBA", "P", "I;16"), "JPEG": ("L", "RGB", "CMYK"),
    "WEBP": ("RGB", "RGBA"), "GIF": ("P", "L"), "BMP": ("RGB", "L"), "TIFF": ("RGB", "F"),
}  # fmt: skip


@st.composite
def generated_images(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt]))
    width, height = draw(st.integers(1, 600)), draw(st.integers(1, 600))
    seed = draw(st.integers(0, 2**16))
    noise = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    img = Image.fromarray(noise).convert(mode if mode != "I;16" else "I").convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _fixed_samples() -> list[bytes]:
    shoe = np.zeros((28, 28), np.uint8)
    shoe[14:22, 4:24] = 200
    samples = [png_bytes(shoe), bomb_png(20_000, 20_000), text_bomb_png(), png_bytes(shoe)[:60]]
    photos = sorted(REAL_PHOTOS.glob("*/*.jpg"))[:5] if REAL_PHOTOS.is_dir() else []
    return samples + [p.read_bytes() for p in photos]


uploads = st.one_of(
    st.sampled_from(_fixed_samples()),
    generated_images(),
    generated_images().map(lambda b: b[: len(b) // 2]),  # truncated
    st.binary(max_size=4096),
)
schemathesis.openapi.format("binary", uploads)
