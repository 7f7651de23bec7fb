"""Image -> model input, shared by training, evaluation and serving."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

NATIVE_SIZE = 28


def to_model_input(images: Tensor, input_size: int, mean: float, std: float) -> Tensor:
    """Turn (B, 28, 28) uint8 images into normalised (B, 1, S, S) float32 model input."""
    x = images.unsqueeze(1).to(torch.float32).div_(255.0)
    if input_size != x.shape[-1]:
        # Bilinear with antialias matches torchvision's Resize on tensors, which d2l's recipe uses.
        x = F.interpolate(
            x, size=(input_size, input_size), mode="bilinear", align_corners=False, antialias=True
        )
    return x.sub_(mean).div_(std)
