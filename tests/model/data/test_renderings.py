"""The framing renderings are seeded and are what their names say."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from model.data.fashion_mnist import Split
from model.data.renderings import (
    FORMATS,
    NON_GARMENTS,
    REFERENCE,
    RENDERINGS,
    SIZE,
    non_garment,
    parse_weights,
    pipeline_copies,
    render,
)
from model.images.silhouette import prepare_photo


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def grey(data: bytes) -> np.ndarray:
    from PIL import ImageOps

    img = ImageOps.exif_transpose(opened(data))
    return np.asarray(img.convert("L"), dtype=np.int16)


@pytest.fixture(scope="module")
def trouser(test_images: Split) -> np.ndarray:
    """A test image whose garment reaches the top and bottom of its 28x28 box (a trouser)."""
    index = int((test_images.labels == 1).nonzero()[0, 0])
    return test_images.images[index].numpy()


@pytest.mark.parametrize("name", sorted(RENDERINGS))
def test_renderings_are_seeded(name: str, trouser: np.ndarray) -> None:
    assert render(name, trouser, 3) == render(name, trouser, 3)
    assert opened(render(name, trouser, 3)).size[0] >= 28


@pytest.mark.parametrize("name", ["off-centre", "tinted-on-colour", "floor", "soft-shadow"])
def test_random_renderings_differ_by_seed(name: str, trouser: np.ndarray) -> None:
    assert render(name, trouser, 1) != render(name, trouser, 2)


def test_the_reference_is_the_image_itself(trouser: np.ndarray) -> None:
    assert np.array_equal(np.asarray(opened(render(REFERENCE, trouser, 0))), trouser)


@pytest.mark.parametrize(("name", "background"), [
    ("full-frame-dark-on-light", 255), ("full-frame-light-on-dark", 0),
])  # fmt: skip
def test_full_frame_fills_the_frame_in_its_polarity(
    name: str, background: int, trouser: np.ndarray
) -> None:
    a = grey(render(name, trouser, 0))
    assert a.shape == (SIZE, SIZE)
    assert a[0, 0] == background and a[-1, -1] == background
    # A trouser reaches the top and the bottom edge: garment in the first and last rows.
    garment = np.abs(a - background) > 100
    assert garment[0].any() and garment[-1].any()


@pytest.mark.parametrize("margin", [5, 14, 40])
def test_margins_are_white_and_as_wide_as_named(margin: int, trouser: np.ndarray) -> None:
    a = grey(render(f"margin-{margin}", trouser, 0))
    inked = np.argwhere(a < 200)
    top, bottom = inked[:, 0].min(), inked[:, 0].max()
    # The garment starts right after the margin (bicubic blur: within 3 px) and never in it.
    assert margin <= top <= margin + 3 and SIZE - margin - 4 <= bottom <= SIZE - 1 - margin


def test_off_centre_is_off_centre_on_a_wider_canvas(trouser: np.ndarray) -> None:
    a = grey(render("off-centre", trouser, 0))
    h, w = a.shape
    cols = np.argwhere(a < 200)[:, 1]
    assert w > h and abs((cols.min() + cols.max()) / 2 - w / 2) > w / 8


@pytest.mark.parametrize("kind", ["floor", "bed", "wood"])
def test_textures_vary_and_are_lit_unevenly(kind: str, trouser: np.ndarray) -> None:
    a = grey(render(kind, trouser, 0)).astype(float)
    corners = [a[:20, :20].mean(), a[:20, -20:].mean(), a[-20:, :20].mean(), a[-20:, -20:].mean()]
    assert max(corners) - min(corners) > 5  # light falls off across the frame
    assert a[:20, :].std() > 2  # a texture, not a flat colour


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("JPEG-30", lambda img: img.format == "JPEG"),
        ("WebP", lambda img: img.format == "WEBP"),
        ("GIF", lambda img: img.format == "GIF" and img.mode == "P"),
        ("CMYK", lambda img: img.format == "JPEG" and img.mode == "CMYK"),
        ("16-bit", lambda img: img.format == "PNG" and img.mode.startswith("I")),
        ("RGBA", lambda img: img.mode == "RGBA" and img.getchannel("A").getextrema()[0] == 0),
        ("EXIF-rotated", lambda img: img.getexif().get(0x0112) == 6),
    ],
)
def test_formats_are_what_they_say(fmt: str, check: object, trouser: np.ndarray) -> None:
    assert fmt in FORMATS
    img = opened(render(f"format-{fmt}", trouser, 0))
    assert check(img), (img.format, img.mode)  # type: ignore[operator]


def test_jpeg_quality_changes_the_file(trouser: np.ndarray) -> None:
    sizes = [len(render(f"format-JPEG-{q}", trouser, 0)) for q in (30, 60, 95)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] / 2


def test_exif_rotation_turns_back_to_the_upright_shot(trouser: np.ndarray) -> None:
    upright = grey(render("full-frame-dark-on-light", trouser, 0))
    turned = grey(render("format-EXIF-rotated", trouser, 0))
    assert turned.shape == upright.shape and np.abs(turned - upright).mean() < 4


@pytest.mark.parametrize("kind", sorted(NON_GARMENTS))
def test_non_garments_are_seeded_images(kind: str) -> None:
    assert non_garment(kind, 5) == non_garment(kind, 5) != non_garment(kind, 6)
    assert min(opened(non_garment(kind, 5)).size) >= 24


def test_pipeline_copies_are_served_28x28s(test_images: Split) -> None:
    copies = pipeline_copies(test_images.images[:6].numpy(), seed=0)
    assert copies.shape == (6, 28, 28) and copies.dtype == np.uint8
    assert np.array_equal(copies, pipeline_copies(test_images.images[:6].numpy(), seed=0))
    assert (copies.reshape(6, -1).max(1) > 200).all()  # each shows a light garment


def test_pipeline_weights_draw_the_named_renderings_that_much_more_often(
    test_images: Split,
) -> None:
    images = test_images.images[:4].numpy()
    # All but certain to draw the margin (which uses no randomness): each copy is that rendering.
    copies = pipeline_copies(images, seed=3, weights=parse_weights("margin-40=1e12"))
    expected = np.stack([prepare_photo(render("margin-40", im, 0)) for im in images])
    assert np.array_equal(copies, expected)
    assert not np.array_equal(pipeline_copies(images, seed=3), expected)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("carpet=2", "no rendering named 'carpet'"),
        ("plain-png-28=2", "no rendering named 'plain-png-28'"),
        ("floor=lots", "write NAME=WEIGHT"),
        ("floor=0", "must be positive"),
    ],
)
def test_pipeline_weights_are_checked(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_weights(text)
    assert parse_weights("floor=4,format-RGBA=2.5") == {"floor": 4.0, "format-RGBA": 2.5}


def test_bad_pipeline_weights_are_a_one_line_training_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from model.train import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--pipeline-weights=carpet=2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1
    assert "--pipeline-weights: no rendering named 'carpet'" in err
