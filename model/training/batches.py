"""Fashion-MNIST and silhouette photos as training batches: batched crops, flips and the
photo-like changes, on the training device."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from model.data.fashion_mnist import MEAN, STD, Split
from model.images.silhouette import to_model_input
from model.training.augment import random_affine, uniform


@dataclass(frozen=True)
class Augment:
    """Random crop after zero padding, and random horizontal flip, applied at 28x28."""

    crop_padding: int = 0
    flip: bool = False


def augment(images: Tensor, aug: Augment, generator: torch.Generator) -> Tensor:
    """Apply aug to a (B, H, W) batch with per-image random offsets and flips."""
    b, h, w = images.shape
    dev = images.device  # the generator lives there too: no host round trip on a GPU
    if aug.crop_padding > 0:
        p = aug.crop_padding
        padded = torch.nn.functional.pad(images, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b, 1, 1), generator=generator, device=dev)
        dx = torch.randint(0, 2 * p + 1, (b, 1, 1), generator=generator, device=dev)
        rows = dy + torch.arange(h, device=dev).view(1, h, 1)
        cols = dx + torch.arange(w, device=dev).view(1, 1, w)
        images = padded[torch.arange(b, device=dev).view(b, 1, 1), rows, cols]
    if aug.flip:
        flip = torch.rand(b, generator=generator, device=dev) < 0.5
        images = torch.where(flip.view(b, 1, 1), images.flip(-1), images)
    return images


class BatchLoader:
    """Yields (inputs, labels) batches for the given example indices, transforms done per batch."""

    def __init__(
        self,
        split: Split,
        indices: Sequence[int] | Tensor,
        batch_size: int,
        input_size: int,
        aug: Augment | None = None,
        generator: torch.Generator | None = None,
        mean: float = MEAN,
        std: float = STD,
    ) -> None:
        self.split = split
        self.indices = torch.as_tensor(
            list(indices) if not isinstance(indices, Tensor) else indices
        )
        self.batch_size = batch_size
        self.input_size = input_size
        self.aug = aug or Augment()
        self.generator = generator or torch.Generator()
        self.mean = mean
        self.std = std

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.indices), self.batch_size):
            idx = self.indices[start : start + self.batch_size]
            images = augment(self.split.images[idx], self.aug, self.generator)
            x = to_model_input(images, self.input_size, self.mean, self.std)
            yield x, self.split.labels[idx]


@dataclass(frozen=True)
class PhotoLike:
    """Random changes that real photos make to the network's 28x28 input, drawn per image.

    Each turns one kind of photo-preprocessing error into training data: scale, aspect, shift
    and rotation (imperfect crops, objects not centred or cut at an edge), contrast and gamma
    (lighting, fabric), blur (focus, small photos), noise (sensor), clutter (background that
    survives the crop as light patches near the object). All batched tensor work.
    """

    scale: tuple[float, float] = (0.8, 1.1)
    aspect: float = 0.1
    shift: float = 0.08
    degrees: float = 10.0
    gamma: tuple[float, float] = (0.7, 1.4)
    contrast: tuple[float, float] = (0.7, 1.1)
    blur: float = 0.3  # probability of a 3x3 blur of random strength
    noise: float = 0.03  # largest noise standard deviation, pixel values in [0, 1]
    clutter: float = 0.2  # probability of a light patch near an edge
    erase: float = 0.0  # probability of a black rectangle: an occluded or badly cut object

    def scaled(self, k: float) -> PhotoLike:
        """The same changes k times as strong (k = 0: none)."""

        def around_one(r: tuple[float, float]) -> tuple[float, float]:
            return (1 - (1 - r[0]) * k, 1 + (r[1] - 1) * k)

        return PhotoLike(
            scale=around_one(self.scale),
            aspect=self.aspect * k,
            shift=self.shift * k,
            degrees=self.degrees * k,
            gamma=around_one(self.gamma),
            contrast=around_one(self.contrast),
            blur=min(1.0, self.blur * k),
            noise=self.noise * k,
            clutter=min(1.0, self.clutter * k),
            erase=min(1.0, self.erase * k),
        )


def photo_like(images: Tensor, p: PhotoLike, gen: torch.Generator) -> Tensor:
    """Apply p to a (B, 28, 28) uint8 batch; returns uint8, as serving's input is."""
    b, h, w = images.shape
    dev = images.device
    x = images.unsqueeze(1).float() / 255.0
    # Geometry: one affine map per image, zeros (black, the background) outside.
    x = random_affine(x, p.scale, p.aspect, p.degrees, p.shift, gen, "zeros")
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    if p.erase > 0:  # occlusion: a black rectangle anywhere
        erase = (torch.rand(b, generator=gen, device=dev) < p.erase).view(b, 1, 1)
        r0, c0 = (torch.randint(0, h, (b, 1, 1), generator=gen, device=dev) for _ in range(2))
        size = torch.randint(4, 11, (b, 2, 1, 1), generator=gen, device=dev)
        box = (rows >= r0) & (rows < r0 + size[:, 0]) & (cols >= c0) & (cols < c0 + size[:, 1])
        x = x.masked_fill((box & erase).unsqueeze(1), 0.0)
    # Clutter: a soft light rectangle touching one edge.
    patch = torch.rand(b, generator=gen, device=dev) < p.clutter
    if patch.any():
        r0 = torch.randint(0, h, (b, 1, 1), generator=gen, device=dev)
        c0 = torch.randint(0, w, (b, 1, 1), generator=gen, device=dev)
        size = torch.randint(2, 7, (b, 2, 1, 1), generator=gen, device=dev)
        side = torch.randint(0, 4, (b, 1, 1), generator=gen, device=dev)
        r0 = torch.where(side == 0, 0, torch.where(side == 1, h - size[:, 0], r0))
        c0 = torch.where(side == 2, 0, torch.where(side == 3, w - size[:, 1], c0))
        box = (rows >= r0) & (rows < r0 + size[:, 0]) & (cols >= c0) & (cols < c0 + size[:, 1])
        level = uniform(0.15, 0.6, b, gen, dev).view(b, 1, 1) * patch.view(b, 1, 1)
        x = torch.maximum(x, (box * level).unsqueeze(1))
    # Tone: contrast, then gamma.
    x = x * uniform(*p.contrast, b, gen, dev).view(b, 1, 1, 1)
    x = x.clamp(0, 1) ** uniform(*p.gamma, b, gen, dev).view(b, 1, 1, 1)
    # Blur: mix each image with its 3x3 binomial blur.
    kernel = torch.tensor([1.0, 2.0, 1.0], device=dev)
    kernel = (kernel[:, None] * kernel[None, :] / 16).view(1, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel)
    amount = uniform(0, 1, b, gen, dev) * (torch.rand(b, generator=gen, device=dev) < p.blur)
    x = torch.lerp(x, blurred, amount.view(b, 1, 1, 1))
    # Noise.
    sigma = uniform(0, p.noise, b, gen, dev).view(b, 1, 1, 1)
    x = x + sigma * torch.randn(x.shape, generator=gen, device=dev)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(1)


class MixedBatchLoader:
    """Batches of Fashion-MNIST images and real photos, targets as (B, classes) bool sets.

    An epoch is one pass over the Fashion-MNIST indices, `fm_per_batch` at a time; each batch
    gets `photos_per_batch` photos, drawn from a fresh permutation whenever one runs out, or
    with replacement in proportion to `photo_weights` when those are given. Photos
    always get the photo-like augmentation; a `fm_photo_like` share of Fashion-MNIST images
    does too, so the two sources look alike to the network.
    """

    def __init__(
        self,
        split: Split,
        indices: Tensor,
        photos: tuple[Tensor, Tensor],
        fm_per_batch: int,
        photos_per_batch: int,
        input_size: int,
        aug: Augment,
        photo_aug: PhotoLike,
        fm_photo_like: float,
        generator: torch.Generator,
        photo_weights: Tensor | None = None,
    ) -> None:
        self.split, self.indices = split, indices
        self.photo_weights = photo_weights
        self.photo_images, self.photo_sets = photos
        self.fm_per_batch, self.photos_per_batch = fm_per_batch, photos_per_batch
        self.input_size, self.aug, self.photo_aug = input_size, aug, photo_aug
        self.fm_photo_like, self.generator = fm_photo_like, generator

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.fm_per_batch)

    def _photo_order(self) -> Iterator[Tensor]:
        dev, n, k = self.photo_images.device, len(self.photo_images), self.photos_per_batch
        if self.photo_weights is not None:
            while True:
                yield torch.multinomial(self.photo_weights, k, True, generator=self.generator)
        pending = torch.empty(0, dtype=torch.int64, device=dev)
        while True:
            while len(pending) < k:
                pending = torch.cat(
                    [pending, torch.randperm(n, generator=self.generator, device=dev)]
                )
            yield pending[:k]
            pending = pending[k:]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        classes = self.photo_sets.shape[1]
        photo_batches = self._photo_order()
        gen = self.generator
        for start in range(0, len(self.indices), self.fm_per_batch):
            idx = self.indices[start : start + self.fm_per_batch]
            pidx = next(photo_batches)
            fm = augment(self.split.images[idx], self.aug, gen)
            dev = fm.device
            pick = torch.rand(len(fm), generator=gen, device=dev) < self.fm_photo_like
            fm = torch.where(pick.view(-1, 1, 1), photo_like(fm, self.photo_aug, gen), fm)
            photos = augment(self.photo_images[pidx], Augment(flip=self.aug.flip), gen)
            photos = photo_like(photos, self.photo_aug, gen)
            images = torch.cat([fm, photos])
            targets = torch.cat(
                [F.one_hot(self.split.labels[idx], classes).bool(), self.photo_sets[pidx]]
            )
            yield to_model_input(images, self.input_size, MEAN, STD), targets
