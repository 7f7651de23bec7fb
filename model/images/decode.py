"""Uploaded bytes to a decoded Pillow image: the format read, the size checked before any pixel
is decoded, the first frame, EXIF orientation applied; every failure an ImageError saying why."""

from __future__ import annotations

import io
import struct

from PIL import Image, ImageOps, UnidentifiedImageError


class ImageError(ValueError):
    """An upload that cannot become model input; subclasses say why."""


class UnsupportedImageError(ImageError):
    """Not an image, or a format Pillow cannot read."""


class CorruptImageError(ImageError):
    """A known format whose data is broken or truncated."""


class ImageTooLargeError(ImageError):
    """Declared dimensions over the pixel limit (a decompression bomb, say)."""


NOT_AN_IMAGE = (
    "the upload is not an image in a format this service reads "
    "(PNG, JPEG, GIF, WebP, BMP, TIFF, ...)"
)
DEFAULT_MAX_PIXELS = 40_000_000
# Photos are analysed at most this large: background, levels and crop need no more detail for a
# 28x28 result, and it scores as well as 128 px at two thirds of the cost (docs/model.md).
WORKING_SIZE = 96
REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"})


def working_size(size: tuple[int, int]) -> tuple[int, int]:
    """The (width, height) a photo is analysed at: its own, or scaled to fit WORKING_SIZE."""
    w, h = size
    scale = WORKING_SIZE / max(w, h)
    return size if scale >= 1 else (max(1, round(w * scale)), max(1, round(h * scale)))


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode with Pillow: size checked before pixels, first frame, EXIF orientation applied."""
    return load_image(open_image(data, max_pixels))


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read the header only (cheap): format known and size checked, no pixels decoded yet."""
    if not data:
        raise CorruptImageError("the image is empty (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(
            f"the image declares more than the limit of {max_pixels:,} pixels ({exc})"
        ) from exc
    except ValueError as exc:
        if "too large" in str(exc).lower() or "too much memory" in str(exc).lower():
            # Pillow's guard on PNG text chunks (MAX_TEXT_CHUNK): an image, metadata too big.
            raise ImageTooLargeError(
                f"the image's metadata is over the limit ({exc}); strip it and send again"
            ) from exc
        raise UnsupportedImageError(NOT_AN_IMAGE) from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UnsupportedImageError(NOT_AN_IMAGE) from exc
    width, height = img.size
    if width * height > max_pixels or width < 1 or height < 1:
        raise ImageTooLargeError(
            f"the image declares {width}x{height} pixels; the limit is {max_pixels:,} pixels"
        )
    if img.format == "JPEG":
        # Decode large JPEGs at a reduced DCT scale: only 28x28 pixels survive anyway. Set here,
        # so img.size already says how many pixels decoding will hold.
        img.draft(img.mode, working_size(img.size))
    return img


# Bytes per pixel of Pillow's in-memory modes (it stores every multi-band mode in 4 bytes).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}


def decoded_bytes(img: Image.Image) -> int:
    """Memory the pixels of an opened image will take once decoded (after any draft)."""
    return img.width * img.height * _MODE_BYTES.get(img.mode, 4)


def load_image(img: Image.Image) -> Image.Image:
    """Decode the pixels of an opened image: first frame, EXIF orientation applied."""
    try:
        img.seek(0)  # the first frame of an animation
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # a copy otherwise: 160 MB more for 40 MP
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(str(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise CorruptImageError(f"the {img.format} image is corrupt or truncated: {exc}") from exc
    return img
