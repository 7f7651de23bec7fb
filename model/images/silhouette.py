"""A photo as the silhouette view sees it: a Fashion-MNIST-like 28x28, the object light on black.

Training feeds Fashion-MNIST's uint8 images straight to to_model_input. Serving first turns an
uploaded photo into that same form (photo_to_fashion_mnist), then calls the same function.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from model.images.decode import (
    DEFAULT_MAX_PIXELS,
    REDUCIBLE_MODES,
    WORKING_SIZE,
    decode_image,
    load_image,
    working_size,
)

if TYPE_CHECKING:
    from torch import Tensor

# The images here are small and a server prepares many at once: OpenCV's own thread pool would
# only add hand-overs (a box blur of a 128x96 photo took 65 us under load with it, 12 us alone).
cv2.setNumThreads(1)

NATIVE_SIZE = 28
# Bumped whenever what this module makes of a photo changes: the training caches are keyed by it.
SILHOUETTE_VERSION = 1


def to_model_input(images: Tensor, input_size: int, mean: float, std: float) -> Tensor:
    """Turn (B, 28, 28) uint8 images into normalised (B, 1, S, S) float32 model input."""
    # torch is imported here, not above: serving on ONNX Runtime imports this module in an
    # image without torch.
    import torch
    from torch.nn import functional as F

    x = images.unsqueeze(1).to(torch.float32).div_(255.0)
    if input_size != x.shape[-1]:
        # Bilinear with antialias matches torchvision's Resize on tensors, which d2l's recipe
        # uses. Antialiasing only acts when shrinking (enlarged, both agree to 2e-6), and
        # without it the resize exports to ONNX: the served graph can start at the uint8 image.
        x = F.interpolate(
            x,
            size=(input_size, input_size),
            mode="bilinear",
            align_corners=False,
            antialias=input_size < x.shape[-1],
        )
    return x.sub_(mean).div_(std)


GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _shrink(a: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """An (H, W[, C]) image, at most twice the working size, scaled down to it.

    Bilinear: 14 us against 72 us for OpenCV's area filter at a fractional scale, and from at
    most 2x (JPEG draft and _reduce see to that) it drops no more detail than the blur after it.
    """
    size = working_size((a.shape[1], a.shape[0]))
    if size == (a.shape[1], a.shape[0]):
        return a
    return cv2.resize(a, size, interpolation=interpolation)


def _luminance(img: Image.Image) -> np.ndarray:
    """Luminance in [0, 255] of a grey mode, stretched to the full range (16-bit, float)."""
    a = np.asarray(img, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)


def _reduce(img: Image.Image) -> Image.Image:
    """A large photo reduced by Pillow's integer box filter to under twice the working size,
    before any copy of its pixels is made (a 40 MP PNG's would be 160 MB)."""
    factor = max(img.size) // (2 * WORKING_SIZE)
    return img.reduce(factor) if factor >= 2 and img.mode in REDUCIBLE_MODES else img


def _ycbcr(img: Image.Image) -> np.ndarray:
    """(H, W, 3) float32 luma and chroma in [0, 255] at the working size, of any mode, alpha
    composited onto a contrasting colour. (OpenCV orders the chroma Cr, Cb: only distances
    between colours are used, which the order does not change.)"""
    if img.mode in (*GREY_MODES, "1", "L"):
        y = _luminance(img) if img.mode in GREY_MODES else np.asarray(img.convert("L"), np.float32)
        # A bilevel image is dithered: its grey is the density of black dots, which only an
        # area average keeps (bilinear samples them: a dithered object came out 35 levels off).
        y = _shrink(y, cv2.INTER_AREA if img.mode == "1" else cv2.INTER_LINEAR)
        out = np.full((*y.shape, 3), 128.0, dtype=np.float32)
        out[..., 0] = y
        return out
    has_alpha = img.mode in ALPHA_MODES or "transparency" in img.info
    if not has_alpha:
        rgb = _shrink(np.asarray(img if img.mode == "RGB" else img.convert("RGB")))
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    rgba = _shrink(np.asarray(img.convert("RGBA")))
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    ycc = cv2.cvtColor(np.ascontiguousarray(rgba[..., :3]), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    if alpha.min() >= 1.0:
        return ycc
    # A cut-out has no background of its own: give it one that contrasts with the object.
    opaque = alpha[..., 0] > 0.5
    level = ycc[..., 0][opaque].mean() if opaque.any() else 0.0
    background = np.array([255.0 if level < 128 else 0.0, 128.0, 128.0], dtype=np.float32)
    return ycc * alpha + background * (1.0 - alpha)


def _border(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    k = max(1, min(h, w) // 20)
    return np.concatenate([a[:k].ravel(), a[-k:].ravel(), a[:, :k].ravel(), a[:, -k:].ravel()])


def _box_blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1) square of each pixel of an (H, W, C) array, edges repeated."""
    if radius < 1:
        return a
    k = 2 * radius + 1
    return cv2.blur(a, (k, k), borderType=cv2.BORDER_REPLICATE)


def _smooth_lines(lines: np.ndarray, radius: int) -> np.ndarray:
    """A moving mean over 2r+1 positions along the last axis of (..., N) lines, edges repeated."""
    k = 2 * radius + 1
    flat = lines.reshape(-1, lines.shape[-1])
    return cv2.blur(flat, (k, 1), borderType=cv2.BORDER_REPLICATE).reshape(lines.shape)


# Below this colour distance (YCbCr, 0-255) the photo's centre looks like its corners: no object
# colour to tell apart, and every border position is taken for background.
MIN_OBJECT_CONTRAST = 48.0


def _centre_colour(ycc: np.ndarray) -> np.ndarray:
    """(3,) median colour of the middle third of a (3, H, W) image: where the object is.
    (np.partition's median: np.median's value at a third of its cost.)"""
    _, h, w = ycc.shape
    block = ycc[:, h // 3 : h - h // 3, w // 3 : w - w // 3].reshape(3, -1)
    k = block.shape[1] // 2
    if block.shape[1] % 2:
        return np.partition(block, k, axis=1)[:, k]
    part = np.partition(block, (k - 1, k), axis=1)
    return (part[:, k - 1] + part[:, k]) * np.float32(0.5)


def _background_sides(sides: tuple[np.ndarray, ...], centre: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four border lines (top, bottom, left, right; each (3, N), corner to corner) with every
    stretch that shows the object replaced by background.

    A garment that fills its picture reaches the edges, and a border taken for background there
    cancels its own edges out (full-frame product shots lost 13 points that way). Each border
    position is object when its colour is nearer the photo's centre colour than the background
    line through that side's corners; those positions take the background interpolated from
    the side's other positions, or the corners' line where the whole side is object. A corner
    that is itself nearer the centre takes the median of the eight corner estimates. All four
    sides are decided in one pass over their concatenation (about 20 us for a 128 px photo).
    """
    lengths = np.array([s.shape[1] for s in sides])
    m = max(1, int(lengths.min()) // 16)
    if lengths.min() < 2 * m + 1:
        return sides  # a photo a few pixels across has no border to decide on
    joined = np.concatenate(sides, axis=1)
    # The eight corner estimates, the mean of each side's first and last m positions, in one
    # reduceat over [start, start + m), [start + m, end - m), [end - m, end) of each side.
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    cuts = np.stack([starts, starts + m, starts + lengths - m], 1).ravel()
    ends = (np.add.reduceat(joined, cuts, axis=1)[:, np.r_[0:12:3, 2:12:3]] / m).T
    ends = ends[[0, 4, 1, 5, 2, 6, 3, 7]]  # side by side: (first, last) of each
    level = np.sort(ends, axis=0)[3:5].mean(0)
    if float(np.dot(centre - level, centre - level)) < MIN_OBJECT_CONTRAST**2:
        return sides
    # A corner nearer the object's colour than the background level is object: use the level.
    to_centre, to_level = ends - centre, ends - level
    corner_is_object = np.einsum("ij,ij->i", to_centre, to_centre) < np.einsum(
        "ij,ij->i", to_level, to_level
    )
    ends[corner_is_object] = level
    # The line through each side's two corners, at every position of the side.
    first, last = np.repeat(ends[0::2].T, lengths, axis=1), np.repeat(ends[1::2].T, lengths, axis=1)
    t = (np.arange(joined.shape[1]) - np.repeat(starts, lengths)) / np.repeat(
        np.maximum(lengths - 1, 1), lengths
    )
    line = first + (last - first) * t.astype(np.float32)
    d_centre, d_line = joined - centre[:, None], joined - line
    is_object = np.einsum("ij,ij->j", d_centre, d_centre) < np.einsum("ij,ij->j", d_line, d_line)
    if not is_object.any():
        return sides
    out = []
    start = 0
    for side, n in zip(sides, lengths, strict=True):
        obj, base = is_object[start : start + n], line[:, start : start + n]
        start += n
        if not obj.any():
            out.append(side)
        elif obj.all():
            out.append(base.astype(np.float32))
        else:
            pos = np.arange(n)
            keep = ~obj
            out.append(
                np.stack([np.interp(pos, pos[keep], c[keep]) for c in side]).astype(np.float32)
            )
    return tuple(out)


def _background(ycc: np.ndarray) -> np.ndarray:
    """The background each pixel of a (3, H, W) image would show without the object: a Coons
    patch through the image's four border strips (their per-position medians, smoothed).

    One border colour for the whole photo fails on what phone photos show most: light falling
    off across a floor, or a garment lying half on a bed and half on the floor; the patch follows
    both, so neither survives as clutter.
    """
    _, h, w = ycc.shape
    k = max(1, min(h, w) // 20)
    # The four strips side by side, (k, 3, 2W + 2H), sorted across their depth k in one call
    # (OpenCV's column sort: 10 us against numpy's 50 for a sort along a middle axis).
    strips = np.concatenate(
        [
            ycc[:, :k].transpose(1, 0, 2),
            ycc[:, -k:].transpose(1, 0, 2),
            ycc[:, :, :k].transpose(2, 0, 1),
            ycc[:, :, -k:].transpose(2, 0, 1),
        ],
        axis=2,
    )
    depth = cv2.sort(strips.reshape(k, -1), cv2.SORT_EVERY_COLUMN + cv2.SORT_ASCENDING)
    median = ((depth[k // 2] + depth[(k - 1) // 2]) * np.float32(0.5)).reshape(3, -1)
    # Where the object reaches an edge, that stretch of border is object, not background: it is
    # replaced by the background on either side of it (or the corners' level) before smoothing.
    top, bottom = median[:, : 2 * w].reshape(3, 2, w).transpose(1, 0, 2)
    left, right = median[:, 2 * w :].reshape(3, 2, h).transpose(1, 0, 2)
    top, bottom, left, right = _background_sides((top, bottom, left, right), _centre_colour(ycc))
    # Top and bottom (3, W), left and right (3, H), each smoothed over a quarter of its length.
    top, bottom = _smooth_lines(np.stack([top, bottom]), max(1, w // 8))
    left, right = _smooth_lines(np.stack([left, right]), max(1, h // 8))
    v = np.arange(h, dtype=np.float32) / np.float32(max(h - 1, 1))
    u = np.arange(w, dtype=np.float32) / np.float32(max(w - 1, 1))
    # Rows blend top into bottom, columns left into right; the corners' bilinear blend is in
    # both, so it is taken away from the rows'. Per channel that is one (H, 4) @ (4, W) product:
    # [1 - v, v, left, right] @ [top', bottom', 1 - u, u].
    top = top - (top[:, :1] + u * (top[:, -1:] - top[:, :1]))
    bottom = bottom - (bottom[:, :1] + u * (bottom[:, -1:] - bottom[:, :1]))
    weights = np.empty((3, h, 4), dtype=np.float32)
    weights[:, :, 0], weights[:, :, 1] = 1 - v, v
    weights[:, :, 2], weights[:, :, 3] = left, right
    lines = np.empty((3, 4, w), dtype=np.float32)
    lines[:, 0], lines[:, 1], lines[:, 2], lines[:, 3] = top, bottom, 1 - u, u
    return np.matmul(weights, lines)


# The part of a photo that the network's 28x28 shows: (left, top, right, bottom) as fractions of
# the photo's width and height, upright. Padding to a square may reach past the photo's edges.
Box = tuple[float, float, float, float]
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)


def photo_to_fashion_mnist(img: Image.Image) -> np.ndarray:
    """A photo as a Fashion-MNIST-like (28, 28) uint8 array: light object centred on black."""
    return photo_to_fashion_mnist_framed(img)[0]


def photo_to_fashion_mnist_framed(img: Image.Image) -> tuple[np.ndarray, Box]:
    """photo_to_fashion_mnist's array, and the Box of the photo it shows."""
    if img.size == (NATIVE_SIZE, NATIVE_SIZE) and img.mode == "L":
        a = np.asarray(img)
        if np.median(_border(a)) < 32:
            # Already Fashion-MNIST's form: keep every pixel, so it classifies as the data set does.
            return a.copy(), WHOLE
    ycc = _ycbcr(_reduce(img))
    # Smooth away dithering and sensor noise at a scale finer than one output pixel, so
    # that background texture neither sets the levels nor widens the crop.
    ycc = _box_blur(ycc, radius=min(ycc.shape[:2]) // 56).transpose(2, 0, 1).copy()
    # Fashion-MNIST is a catalogue photo on white, inverted: the object shows as how far it is
    # from its background. Colour counts as well as brightness, so a red shirt on a brown floor
    # of the same brightness stands out, and a dark object on light and a light one on dark
    # come out alike.
    diff = ycc - _background(ycc)
    diff *= diff
    lum = np.sqrt(diff[0] + diff[1] + diff[2])
    top = float(np.partition(lum.ravel(), int(0.995 * (lum.size - 1)))[int(0.995 * (lum.size - 1))])
    if top > 0:
        lum *= np.float32(255.0 / top)
        np.clip(lum, 0, 255, out=lum)
    # Crop to the object's box: rows and columns with enough foreground pixels.
    h, w = lum.shape
    mask = lum > 48
    rows = np.flatnonzero(np.count_nonzero(mask, axis=1) > max(1, 0.02 * w))
    cols = np.flatnonzero(np.count_nonzero(mask, axis=0) > max(1, 0.02 * h))
    full_h, full_w = h, w
    top, left = 0, 0
    if len(rows) and len(cols):
        top, left = int(rows[0]), int(cols[0])
        lum = lum[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    # Pad to a square, keeping the aspect ratio, with the object centred like the data set's.
    h, w = lum.shape
    side = max(h, w)
    square = np.zeros((side, side), dtype=np.uint8)
    top_pad, left_pad = (side - h) // 2, (side - w) // 2
    square[top_pad : top_pad + h, left_pad : left_pad + w] = lum
    small = cv2.resize(square, (NATIVE_SIZE, NATIVE_SIZE), interpolation=cv2.INTER_AREA)
    x0, y0 = left - left_pad, top - top_pad
    return small, (x0 / full_w, y0 / full_h, (x0 + side) / full_w, (y0 + side) / full_h)


def prepare_timed(img: Image.Image, start: float) -> tuple[np.ndarray, float, float, Box]:
    """An opened image's pixels decoded and preprocessed, its bitmap closed at once: the (28, 28)
    array, the seconds from `start` to decoded, the seconds preprocessing took, and its Box."""
    img = load_image(img)
    decoded = time.perf_counter()
    x, box = photo_to_fashion_mnist_framed(img)
    done = time.perf_counter()
    img.close()  # the bitmap goes now, not when the caller lets go of the image object
    return x, decoded - start, done - decoded, box


def prepare_photo(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Uploaded bytes to a (28, 28) uint8 Fashion-MNIST-like array: decode, then preprocess."""
    return photo_to_fashion_mnist(decode_image(data, max_pixels))


def naive_squash_28(img: Image.Image) -> np.ndarray:
    """The naive baseline: grayscale and squash to 28x28, no polarity, crop or padding."""
    if img.mode == "P":
        img = img.convert("RGBA")
    small = img.convert("L").resize((NATIVE_SIZE, NATIVE_SIZE), Image.Resampling.BILINEAR)
    return np.array(small)
