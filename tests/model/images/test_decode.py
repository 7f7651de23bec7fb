import io

import numpy as np
import pytest
from PIL import Image

from model.images.decode import (
    CorruptImageError,
    ImageTooLargeError,
    UnsupportedImageError,
    decode_image,
)
from tests.helpers import bomb_png, object_photo, png_bytes


def test_exif_orientation_is_applied() -> None:
    upright = object_photo(True, size=(200, 120))  # wide canvas, the object lying on its side
    img = Image.fromarray(upright.T.copy())  # stored rotated: a tall canvas
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    shown = decode_image(buf.getvalue())
    # Turned back to wide (JPEG may be decoded at a reduced scale: only the shape is fixed).
    width, height = shown.size
    assert width > height and abs(width / height - 200 / 120) < 0.05


def test_errors_are_typed() -> None:
    with pytest.raises(UnsupportedImageError):
        decode_image(b"hello, this is not an image")
    with pytest.raises(CorruptImageError, match="empty"):
        decode_image(b"")
    noisy = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    truncated = noisy[: len(noisy) // 2]
    with pytest.raises(CorruptImageError, match=r"truncated|corrupt"):
        decode_image(truncated)
    with pytest.raises(ImageTooLargeError, match="8000x8000 pixels; the limit is 40,000,000"):
        decode_image(bomb_png(8_000, 8_000))
    with pytest.raises(ImageTooLargeError, match="limit of 40,000,000 pixels"):
        decode_image(bomb_png(100_000, 100_000))
