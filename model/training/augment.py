"""Random changes to photo views, batched on the training device: how else the photo was taken.

Scale, aspect, shift and a small rotation (the garment framed otherwise), a mirror image, and
brightness, contrast and gamma (other light). The photo's own border fills what the geometry
uncovers, as a wider shot of the same background would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F


@dataclass(frozen=True)
class ViewAugment:
    scale: tuple[float, float] = (0.8, 1.15)
    aspect: float = 0.1
    shift: float = 0.08
    degrees: float = 8.0
    flip: bool = True
    brightness: float = 0.15
    contrast: tuple[float, float] = (0.75, 1.25)
    gamma: tuple[float, float] = (0.8, 1.25)


def uniform(lo: float, hi: float, n: int, gen: torch.Generator, dev: torch.device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=dev)


def random_affine(
    x: Tensor,
    scale: tuple[float, float],
    aspect: float,
    degrees: float,
    shift: float,
    gen: torch.Generator,
    padding: str,
    mirror: Tensor | None = None,
) -> Tensor:
    """(B, C, H, W) floats, each image zoomed, stretched, turned and shifted by its own draw
    (and mirrored where `mirror` is -1); `padding` fills what the map uncovers."""
    b, dev = x.shape[0], x.device
    zoom = uniform(*scale, b, gen, dev)
    stretch = uniform(-aspect, aspect, b, gen, dev).exp()
    angle = uniform(-degrees, degrees, b, gen, dev) * (math.pi / 180)
    sx, sy = 1 / (zoom * stretch), stretch / zoom
    if mirror is not None:
        sx = sx * mirror
    cos, sin = torch.cos(angle), torch.sin(angle)
    tx, ty = (uniform(-shift, shift, b, gen, dev) * 2 for _ in range(2))
    theta = torch.stack(
        [torch.stack([sx * cos, -sx * sin, tx], 1), torch.stack([sy * sin, sy * cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def view_augment(images: Tensor, p: ViewAugment, gen: torch.Generator) -> Tensor:
    """(B, C, H, W) uint8 views to augmented floats in [0, 1], drawn per image from gen."""
    b = images.shape[0]
    dev = images.device
    mirror = None
    if p.flip:
        mirror = torch.where(torch.rand(b, generator=gen, device=dev) < 0.5, -1.0, 1.0)
    x = random_affine(images.float() / 255.0, p.scale, p.aspect, p.degrees, p.shift, gen,
                      "border", mirror)  # fmt: skip
    shape = (b, 1, 1, 1)
    x = x * uniform(*p.contrast, b, gen, dev).view(shape)
    x = x + uniform(-p.brightness, p.brightness, b, gen, dev).view(shape)
    return x.clamp(0, 1) ** uniform(*p.gamma, b, gen, dev).view(shape)
