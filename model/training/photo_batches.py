"""Batches for the photo view: the labelled photos with the teacher's answers, and Fashion-MNIST.

An epoch is one pass over the training photos. Each batch pairs them with as many Fashion-MNIST
images, resized to the view's size; half of those are inverted (a dark garment on white, as a
catalogue shot is), half kept as the data set has them, so both kinds of upload are known.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.nn import functional as F

from model.data.fashion_mnist import Split
from model.training.augment import ViewAugment, view_augment
from model.training.distill import Targets

# The photo view's input normalisation: grey photos sit around mid-grey.
VIEW_MEAN, VIEW_STD = 0.5, 0.25


def normalise(x: Tensor, mean: float, std: float) -> Tensor:
    """Floats in [0, 1] or uint8 (B, C, S, S) views to the network's input."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x
    return (x - mean) / std


def fashion_mnist_views(images: Tensor, size: int, invert: Tensor) -> Tensor:
    """(B, 28, 28) uint8 Fashion-MNIST images as (B, 1, size, size) uint8 views, the rows
    where invert is True dark-on-light."""
    x = F.interpolate(images.unsqueeze(1).float(), size=(size, size), mode="bilinear",
                      align_corners=False)  # fmt: skip
    x = torch.where(invert.view(-1, 1, 1, 1), 255.0 - x, x)
    return x.round().clamp(0, 255).to(torch.uint8)


class PhotoViewBatches:
    """(normalised input, Targets) batches: photos_per_batch photos, then as many Fashion-MNIST
    images (drawn without replacement across epochs' generators), all augmented."""

    def __init__(
        self,
        photos: Tensor,
        sets: Tensor,
        teacher: Tensor,
        fm: Split,
        photos_per_batch: int,
        mean: float,
        std: float,
        generator: torch.Generator,
        aug: ViewAugment | None = None,
    ) -> None:
        self.photos, self.sets, self.teacher, self.fm = photos, sets, teacher, fm
        self.photos_per_batch, self.mean, self.std = photos_per_batch, mean, std
        self.generator, self.aug = generator, aug or ViewAugment()

    def __len__(self) -> int:
        return math.ceil(len(self.photos) / self.photos_per_batch)

    def __iter__(self) -> Iterator[tuple[Tensor, Targets]]:
        gen, dev = self.generator, self.photos.device
        size, classes = self.photos.shape[-1], self.sets.shape[1]
        order = torch.randperm(len(self.photos), generator=gen, device=dev)
        fm_order = torch.randperm(len(self.fm), generator=gen, device=dev)
        for i, start in enumerate(range(0, len(order), self.photos_per_batch)):
            idx = order[start : start + self.photos_per_batch]
            n = len(idx)
            fm_idx = fm_order[(i * n) % len(fm_order) :][:n]
            invert = torch.rand(len(fm_idx), generator=gen, device=dev) < 0.5
            fm = fashion_mnist_views(self.fm.images[fm_idx], size, invert)
            views = torch.cat([self.photos[idx], fm.expand(-1, self.photos.shape[1], -1, -1)])
            x = normalise(view_augment(views, self.aug, gen), self.mean, self.std)
            sets = torch.cat([self.sets[idx], F.one_hot(self.fm.labels[fm_idx], classes).bool()])
            teacher = torch.cat([self.teacher[idx], torch.zeros(len(fm_idx), classes, device=dev)])
            has = torch.cat([torch.ones(n, dtype=torch.bool, device=dev),
                             torch.zeros(len(fm_idx), dtype=torch.bool, device=dev)])  # fmt: skip
            yield x, Targets(sets, teacher, has)
