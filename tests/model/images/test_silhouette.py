import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from model.data.fashion_mnist import Split
from model.images.decode import (
    decode_image,
)
from model.images.silhouette import photo_to_fashion_mnist, photo_to_fashion_mnist_framed
from tests.helpers import object_photo, png_bytes


def prepared(data: bytes) -> np.ndarray:
    return photo_to_fashion_mnist(decode_image(data))


def test_fashion_mnist_images_pass_unchanged(test_images: Split) -> None:
    for image in test_images.images[:16]:
        assert np.array_equal(
            photo_to_fashion_mnist(decode_image(png_bytes(image.numpy()))), image.numpy()
        )


@pytest.mark.parametrize("dark_on_light", [True, False])
def test_object_ends_light_on_black_cropped_and_centred(dark_on_light: bool) -> None:
    out = prepared(png_bytes(object_photo(dark_on_light)))
    assert out.shape == (28, 28)
    assert out[:, 0].max() < 30 and out[:, -1].max() < 30  # padding on both sides is black
    assert out[14, 14] > 200  # the object is light and centred
    # A 40x100 object fills the height and keeps its aspect ratio: about 11 of 28 columns.
    lit = np.flatnonzero(out[14] > 128)
    assert 9 <= len(lit) <= 13 and abs((lit[0] + lit[-1]) / 2 - 13.5) <= 1


def test_polarity_is_the_same_either_way() -> None:
    a = prepared(png_bytes(object_photo(True))).astype(int)
    b = prepared(png_bytes(object_photo(False))).astype(int)
    assert np.abs(a - b).mean() < 10


def _as_mode(mode: str) -> bytes:
    base = Image.fromarray(object_photo(True)).convert("RGB")
    if mode == "I;16":
        arr = (np.asarray(base.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        return png_bytes(Image.fromarray(arr))
    if mode == "CMYK":
        return png_bytes(base.convert("CMYK"), fmt="JPEG")
    if mode == "RGBA":  # dark object cut out from a transparent background whose RGB is black
        rgba = np.zeros((200, 120, 4), dtype=np.uint8)
        rgba[50:150, 20:60] = (40, 40, 40, 255)
        return png_bytes(rgba)
    if mode == "GIF":  # an animation: the first frame is the photo, the second is blank
        frames = [base.convert("P"), Image.new("P", base.size)]
        return png_bytes(frames[0], fmt="GIF", save_all=True, append_images=frames[1:])
    return png_bytes(base.convert(mode))


@pytest.mark.parametrize("mode", ["RGB", "P", "CMYK", "I;16", "RGBA", "LA", "1", "GIF"])
def test_every_mode_gives_the_same_object(mode: str) -> None:
    reference = prepared(png_bytes(object_photo(True))).astype(int)
    out = prepared(_as_mode(mode)).astype(int)
    assert np.abs(out - reference).mean() < 25, mode


def _garment_on(background: str, edges: int) -> tuple[np.ndarray, np.ndarray]:
    """A (3, H, W) YCrCb photo of a dark garment reaching `edges` of the frame's edges (0, 1:
    bottom, 2: top and bottom, 4: all, corners free) on a flat or a gradient background; and
    the true background."""
    h, w = 120, 100
    if background == "flat":
        bg = np.full((h, w), 220.0, np.float32)
    else:  # light falling off from left to right
        bg = np.tile(np.linspace(250, 150, w, dtype=np.float32), (h, 1))
    y = bg.copy()
    top, bottom = (0 if edges in (2, 4) else 20), (h if edges >= 1 else h - 20)
    left, right = (0, w) if edges == 4 else (25, 75)
    y[top:bottom, 30:70] = 40.0  # the body, touching top and/or bottom
    y[40:80, left:right] = 40.0  # the arms, touching left and right with 4 edges
    ycc = np.full((3, h, w), 128.0, np.float32)
    ycc[0] = y
    truth = np.full((3, h, w), 128.0, np.float32)
    truth[0] = bg
    return ycc, truth


@pytest.mark.parametrize("background", ["flat", "gradient"])
@pytest.mark.parametrize("edges", [0, 1, 2, 4])
def test_a_garment_touching_edges_is_not_taken_for_background(background: str, edges: int) -> None:
    from model.images.silhouette import _background

    ycc, truth = _garment_on(background, edges)
    estimate = _background(ycc)
    # Along every edge, where the garment touches it too, the estimate is the real background.
    border = np.zeros(truth.shape[1:], bool)
    border[:3], border[-3:], border[:, :3], border[:, -3:] = True, True, True, True
    error = np.abs(estimate[0] - truth[0])[border]
    assert error.max() < 25, (error.max(), edges, background)


@pytest.mark.parametrize("edges", [1, 2, 4])
def test_full_frame_garments_keep_their_edges(edges: int) -> None:
    ycc, _ = _garment_on("flat", edges)
    y = ycc[0].astype(np.uint8)
    out = photo_to_fashion_mnist(Image.fromarray(np.stack([y, y, y], -1)))
    # The body's column stays lit from top to bottom: its ends at the edges did not cancel out.
    assert out[:, 12:16].min(axis=1).mean() > 100, out[:, 12:16].min(axis=1)


def _reference_sides(sides: tuple[np.ndarray, ...], centre: np.ndarray) -> list[np.ndarray]:
    """_background_sides written plainly, side by side with norms: what the fast one must equal."""
    from model.images.silhouette import MIN_OBJECT_CONTRAST

    m = max(1, min(s.shape[1] for s in sides) // 16)
    if min(s.shape[1] for s in sides) < 2 * m + 1:
        return list(sides)
    ends = np.stack([e for s in sides for e in (s[:, :m].mean(1), s[:, -m:].mean(1))])
    level = np.median(ends, axis=0)
    if np.linalg.norm(centre - level) < MIN_OBJECT_CONTRAST:
        return list(sides)
    out = []
    for side in sides:
        a, b = side[:, :m].mean(1), side[:, -m:].mean(1)
        a = level if np.linalg.norm(a - centre) < np.linalg.norm(a - level) else a
        b = level if np.linalg.norm(b - centre) < np.linalg.norm(b - level) else b
        line = a[:, None] + (b - a)[:, None] * np.linspace(0, 1, side.shape[1])
        obj = np.linalg.norm(side - centre[:, None], axis=0) < np.linalg.norm(side - line, axis=0)
        if not obj.any():
            out.append(side)
        elif obj.all():
            out.append(line)
        else:
            pos = np.arange(side.shape[1])
            out.append(np.stack([np.interp(pos, pos[~obj], c[~obj]) for c in side]))
    return out


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(16, 160), st.integers(16, 160), st.integers(0, 2**32 - 1), st.floats(0, 1))
def test_the_fast_side_decision_equals_the_plain_one(
    h: int, w: int, seed: int, share: float
) -> None:
    from model.images.silhouette import _background_sides

    rng = np.random.default_rng(seed)
    background, garment = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    sides = []
    for n in (w, w, h, h):
        side = np.repeat(background[:, None], n, 1) + rng.normal(0, 8, (3, n))
        run = int(share * n)
        start = int(rng.integers(0, n - run + 1))
        side[:, start : start + run] = garment[:, None] + rng.normal(0, 8, (3, run))
        sides.append(side.astype(np.float32))
    centre = (garment + rng.normal(0, 4, 3)).astype(np.float32)
    fast = _background_sides(tuple(sides), centre)
    for got, expected in zip(fast, _reference_sides(tuple(sides), centre), strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-3)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (1, 7), (3, 2), (5, 5)])
def test_photos_a_few_pixels_across_are_prepared(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8))
    assert photo_to_fashion_mnist(photo).shape == (28, 28)


@pytest.mark.parametrize(
    ("size", "rect"),
    [
        ((200, 100), (50, 20, 100, 80)),
        ((120, 240), (10, 100, 110, 140)),
        ((90, 90), (0, 20, 50, 70)),
    ],
)
def test_the_box_is_the_square_around_the_garment(
    size: tuple[int, int], rect: tuple[int, int, int, int]
) -> None:
    """A dark rectangle on white: the box is the square the crop pads it to, centred on it, as
    fractions of the photo."""
    w, h = size
    a = np.full((h, w), 245, dtype=np.uint8)
    x0, y0, x1, y1 = rect
    a[y0:y1, x0:x1] = 30
    _, box = photo_to_fashion_mnist_framed(Image.fromarray(a))
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    expected = ((cx - side / 2) / w, (cy - side / 2) / h, (cx + side / 2) / w, (cy + side / 2) / h)
    assert box == pytest.approx(expected, abs=0.03)
