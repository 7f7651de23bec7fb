"""The photo view: the photo's own pixels, squashed square, in grey or colour, from any source."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.images.decode import decode_image
from model.images.photo_view import GARMENT_MARGIN, WHOLE, framed_view, grown, photo_view
from tests.helpers import png_bytes


def halves(width: int = 200, height: int = 100) -> np.ndarray:
    """An RGB photo: red on the left half, blue on the right."""
    a = np.zeros((height, width, 3), dtype=np.uint8)
    a[:, : width // 2] = (220, 30, 30)
    a[:, width // 2 :] = (30, 30, 220)
    return a


def test_the_whole_photo_is_squashed_square_keeping_where_things_are() -> None:
    view = photo_view(decode_image(png_bytes(halves())), 32, channels=3)
    assert view.shape == (3, 32, 32) and view.dtype == np.uint8
    # Left half red, right half blue: squashed, not padded or cropped.
    assert view[0, :, :15].mean() > 200 and view[2, :, :15].mean() < 50
    assert view[2, :, 17:].mean() > 200 and view[0, :, 17:].mean() < 50


def test_grey_is_the_luma_of_colour() -> None:
    grey = photo_view(decode_image(png_bytes(halves())), 16, channels=1)
    assert grey.shape == (1, 16, 16)
    # ITU-R 601 luma, as Pillow's "L": red 220,30,30 -> 86; blue 30,30,220 -> 51.
    assert abs(int(grey[0, 8, 2]) - 86) <= 1 and abs(int(grey[0, 8, 13]) - 51) <= 1


def test_shrinking_is_antialiased() -> None:
    # One-pixel stripes average to mid-grey; sampling without a filter would keep them.
    stripes = np.zeros((256, 256), dtype=np.uint8)
    stripes[:, ::2] = 255
    view = photo_view(Image.fromarray(stripes), 32)
    assert np.abs(view.astype(int) - 127).max() <= 2


def test_exif_orientation_is_applied_before_the_view() -> None:
    a = halves(200, 100)  # red left, blue right, as shown
    stored = np.ascontiguousarray(np.rot90(a, k=1))  # stored turned 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, format="JPEG", exif=exif, quality=95)
    view = photo_view(decode_image(buf.getvalue()), 32, channels=3)
    assert view[0, :, :12].mean() > 170 and view[2, :, 20:].mean() > 170


def test_transparency_is_white() -> None:
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[10:30, 10:30] = (0, 0, 0, 255)  # an opaque black square on a transparent canvas
    view = photo_view(decode_image(png_bytes(Image.fromarray(rgba, "RGBA"))), 40)
    assert view[0, 0, 0] == 255 and view[0, 20, 20] == 0


@pytest.mark.parametrize("mode", ["L", "1", "P", "I;16", "F", "CMYK", "LA", "RGB"])
def test_every_source_mode_gives_the_same_picture(mode: str) -> None:
    a = np.full((64, 64), 230, dtype=np.uint8)
    a[16:48, 24:40] = 20  # a dark upright bar on light grey
    reference = photo_view(Image.fromarray(a), 16).astype(int)
    img = Image.fromarray(a)
    if mode == "I;16":
        img = Image.fromarray(a.astype(np.uint16) * 257)  # the same picture at 16 bits
    elif mode == "F":
        img = Image.fromarray(a.astype(np.float32) / 255)
    else:
        img = img.convert(mode)
    out = photo_view(img, 16).astype(int)
    # Stretched ranges (16-bit, float) and dithering (bilevel) move levels, not the picture.
    assert np.corrcoef(out.ravel(), reference.ravel())[0, 1] > 0.9, mode
    assert out[0, 8, 8] < out[0, 1, 1], mode


def test_a_box_is_cut_out_before_the_resize() -> None:
    img = decode_image(png_bytes(halves()))
    left = photo_view(img, 8, channels=3, box=(0.0, 0.0, 0.5, 1.0))
    assert left[0].min() > 200 and left[2].max() < 50
    assert WHOLE == (0.0, 0.0, 1.0, 1.0)


def test_a_tiny_photo_grows_and_the_channel_count_is_checked() -> None:
    assert photo_view(Image.new("RGB", (1, 1), (9, 9, 9)), 96).shape == (1, 96, 96)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        photo_view(Image.new("RGB", (4, 4)), 8, channels=2)


def test_the_garment_framing_shows_the_garment_larger_than_the_whole_photo() -> None:
    # A dark 60x80 garment on a light 400x400 photo: a sixth of the whole view, most of the
    # garment's.
    a = np.full((400, 400, 3), 225, dtype=np.uint8)
    a[100:180, 250:310] = 30
    img = decode_image(png_bytes(a))
    whole = framed_view(img, 32, 1, "whole")
    garment = framed_view(img, 32, 1, "garment")
    assert np.array_equal(whole, photo_view(img, 32, 1))
    assert (whole < 128).mean() < 0.1 and (garment < 128).mean() > 0.3
    # The margin leaves the background on every edge of the garment's box.
    assert garment[0, 0].min() > 128 and garment[0, -1].min() > 128
    with pytest.raises(ValueError, match="frames one of"):
        framed_view(img, 32, 1, "tight")


def test_grown_adds_the_margin_of_each_side() -> None:
    x0, y0, x1, y1 = grown((0.2, 0.4, 0.6, 0.6))
    m = GARMENT_MARGIN
    assert (x0, x1) == pytest.approx((0.2 - 0.4 * m, 0.6 + 0.4 * m))
    assert (y0, y1) == pytest.approx((0.4 - 0.2 * m, 0.6 + 0.2 * m))
