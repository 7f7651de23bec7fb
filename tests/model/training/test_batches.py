import pytest
import torch

from model.data.fashion_mnist import (
    Split,
    load_split,
)
from model.images.silhouette import to_model_input
from model.training.batches import Augment, BatchLoader, PhotoLike, augment, photo_like


def test_crop_shifts_content_and_flip_mirrors() -> None:
    images = torch.arange(2 * 28 * 28, dtype=torch.int64).reshape(2, 28, 28) % 251 + 1
    gen = torch.Generator().manual_seed(0)
    cropped = augment(images, Augment(crop_padding=2), gen)
    assert cropped.shape == images.shape
    for src, out in zip(images, cropped, strict=True):
        # Every crop is the padded image at some offset in [0, 4] x [0, 4].
        padded = torch.nn.functional.pad(src, (2, 2, 2, 2))
        offsets = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(padded[dy : dy + 28, dx : dx + 28], out)
        ]
        assert offsets
    many = images.repeat(32, 1, 1)
    flipped = augment(many, Augment(flip=True), torch.Generator().manual_seed(1))
    n_flipped = sum(torch.equal(f, i.flip(-1)) for f, i in zip(flipped, many, strict=True))
    assert 0 < n_flipped < 64


@pytest.mark.parametrize("size", [28, 96])
def test_model_input_shape_and_normalisation(size: int) -> None:
    images = torch.full((3, 28, 28), 255, dtype=torch.uint8)
    x = to_model_input(images, size, mean=0.5, std=0.25)
    assert x.shape == (3, 1, size, size)
    assert torch.allclose(x, torch.full_like(x, 2.0))


def test_batches_cover_indices_in_order() -> None:
    split = Split(torch.zeros(10, 28, 28, dtype=torch.uint8), torch.arange(10))
    loader = BatchLoader(split, [9, 3, 5, 1, 0], batch_size=2, input_size=28)
    assert len(loader) == 3
    assert torch.cat([y for _, y in loader]).tolist() == [9, 3, 5, 1, 0]


def test_photo_like_is_seeded_uint8_and_changes_images() -> None:
    images = load_split("test").subset(16).images
    a = photo_like(images, PhotoLike(), torch.Generator().manual_seed(0))
    b = photo_like(images, PhotoLike(), torch.Generator().manual_seed(0))
    assert a.dtype == torch.uint8 and a.shape == images.shape and torch.equal(a, b)
    assert (a.float() - images.float()).abs().mean() > 5
