"""The photo view's batches: photos with their teacher's answers, then as many Fashion-MNIST
images, resized, half of them inverted; the view augmentation seeded and in range."""

from __future__ import annotations

import torch

from model.data.fashion_mnist import Split
from model.training.augment import ViewAugment, view_augment
from model.training.photo_batches import PhotoViewBatches, fashion_mnist_views


def test_view_augment_is_seeded_in_range_and_changes_images() -> None:
    images = torch.randint(0, 256, (6, 1, 32, 32), dtype=torch.uint8)
    a = view_augment(images, ViewAugment(), torch.Generator().manual_seed(0))
    b = view_augment(images, ViewAugment(), torch.Generator().manual_seed(0))
    assert a.shape == images.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert (a - images.float() / 255).abs().mean() > 0.05


def test_fashion_mnist_views_resize_and_invert_where_asked() -> None:
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[:, 10:18, 10:18] = 255  # a light square on black
    views = fashion_mnist_views(images, 56, torch.tensor([False, True]))
    assert views.shape == (2, 1, 56, 56) and views.dtype == torch.uint8
    assert views[0, 0, 0, 0] == 0 and views[0, 0, 28, 28] == 255
    assert views[1, 0, 0, 0] == 255 and views[1, 0, 28, 28] == 0


def test_batches_pair_each_photo_with_a_fashion_mnist_image() -> None:
    photos = torch.randint(0, 256, (10, 1, 32, 32), dtype=torch.uint8)
    sets = torch.zeros(10, 10, dtype=torch.bool)
    sets[:, 3] = True
    teacher = torch.randn(10, 10)
    fm = Split(torch.randint(0, 256, (40, 28, 28), dtype=torch.uint8), torch.arange(40) % 10)
    loader = PhotoViewBatches(photos, sets, teacher, fm, 4, 0.5, 0.25, torch.Generator())
    batches = list(loader)
    assert len(batches) == len(loader) == 3
    seen_teacher = []
    for x, targets in batches:
        n = len(targets) // 2
        assert x.shape == (2 * n, 1, 32, 32) and x.dtype == torch.float32
        assert targets.has_teacher[:n].all() and not targets.has_teacher[n:].any()
        assert targets.sets[:n, 3].all() and (targets.sets[n:].sum(1) == 1).all()
        seen_teacher.append(targets.teacher[:n])
    # Every photo once an epoch, with its own teacher answer.
    got = torch.cat(seen_teacher)
    assert sorted(got[:, 0].tolist()) == sorted(teacher[:, 0].tolist())
