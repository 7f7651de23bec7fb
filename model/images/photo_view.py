"""The photo view: an upload as the photo network sees it, its own pixels, not a silhouette.

The whole photo, or the garment's box as the silhouette's framing finds it, is squashed to a
square and resized with an area filter, in grey or RGB. Alpha is composited onto white, as a
cut-out product shot is shown; 16-bit and float grey are stretched to the full range. No torch:
serving runs it.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# A box of the photo as fractions of its width and height: (x0, y0, x1, y1).
Box = tuple[float, float, float, float]
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)
# What a photo view frames: the whole photo, or the garment's square box grown by GARMENT_MARGIN
# of its side on every edge (the framing's box is tight; a hem or a sleeve may lie on its edge).
FRAMINGS = ("whole", "garment")
GARMENT_MARGIN = 0.08
CHANNEL_MODES = {1: "L", 3: "RGB"}
_HIGH_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _stretched(img: Image.Image) -> np.ndarray:
    """A 16-bit or float grey image as uint8, its range stretched to 0..255."""
    a = np.asarray(img, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return ((a - lo) * scale).round().astype(np.uint8)


def _pixels(img: Image.Image, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 pixels of any Pillow mode, alpha composited onto white."""
    if img.mode in _HIGH_BIT_GREY:
        grey = _stretched(img)
        return grey if channels == 1 else np.repeat(grey[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La", "P") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert(CHANNEL_MODES[channels]))


def grown(box: Box, margin: float = GARMENT_MARGIN) -> Box:
    """box grown by margin of its width and height on every edge."""
    x0, y0, x1, y1 = box
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return (x0 - dx, y0 - dy, x1 + dx, y1 + dy)


def framed_view(img: Image.Image, size: int, channels: int, framing: str) -> np.ndarray:
    """photo_view of the whole photo or of the garment's grown box (see FRAMINGS)."""
    if framing == "whole":
        return photo_view(img, size, channels)
    if framing != "garment":
        raise ValueError(f"a photo view frames one of {FRAMINGS}, not {framing!r}")
    from model.images.silhouette import photo_to_fashion_mnist_framed

    return photo_view(img, size, channels, grown(photo_to_fashion_mnist_framed(img)[1]))


def photo_view(img: Image.Image, size: int, channels: int = 1, box: Box = WHOLE) -> np.ndarray:
    """A decoded photo as (channels, size, size) uint8: box of it squashed square, area-resized."""
    if channels not in CHANNEL_MODES:
        raise ValueError(f"a photo view has 1 or 3 channels, not {channels}")
    if box != WHOLE:
        w, h = img.size
        x0, y0, x1, y1 = box
        left, top = max(0, int(x0 * w)), max(0, int(y0 * h))
        right, bottom = min(w, max(left + 1, round(x1 * w))), min(h, max(top + 1, round(y1 * h)))
        img = img.crop((left, top, right, bottom))
    # Pillow's integer box reduction first: a 40 MP photo is never copied at full size.
    factor = min(img.size) // (2 * size)
    if factor >= 2 and img.mode in ("L", "LA", "RGB", "RGBA", "CMYK", "I", "F"):
        img = img.reduce(factor)
    a = _pixels(img, channels)
    # Area averaging when shrinking (antialiased), bilinear when a small photo grows.
    shrink = a.shape[0] >= size and a.shape[1] >= size
    a = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return a[None] if channels == 1 else np.ascontiguousarray(a.transpose(2, 0, 1))
