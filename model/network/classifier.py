"""The served model as one module: uint8 (B, 28, 28) images in, calibrated probabilities and
each image's garment score out.

Eager PyTorch runs it; model.export turns it into the ONNX graph ONNX Runtime runs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from model.images.silhouette import to_model_input
from model.network.checkpoint_info import InputSpec


class Calibrated(nn.Module):
    """Logits to probabilities, softmax(logits / temperature): the checkpoint's calibration."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, logits: Tensor) -> Tensor:
        logits = logits.float()
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return torch.softmax(logits, dim=1)


class GarmentHead(nn.Module):
    """Pooled features (B, F) to the probability (B,) that each image shows one of the classes:
    one logistic regression, fitted by model.calibrate on garments against non-garments."""

    def __init__(self, weight: list[float], bias: float) -> None:
        super().__init__()
        self.linear = nn.Linear(len(weight), 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor(weight, dtype=torch.float32)[None])
            self.linear.bias.fill_(float(bias))

    def forward(self, features: Tensor) -> Tensor:
        return torch.sigmoid(self.linear(features.float())).squeeze(1)


class Head(nn.Module):
    """The network's pooled features to (probabilities, garment score): its last Linear with the
    calibration, and the garment head, or, without one, the top class's probability."""

    def __init__(
        self, linear: nn.Module, temperature: float, garment: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.linear, self.calibrated = linear, Calibrated(temperature)
        self.garment = None if garment is None else GarmentHead(garment["weight"], garment["bias"])

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        probs = self.calibrated(self.linear(features))
        score = probs.max(1).values if self.garment is None else self.garment(features)
        return probs, score


class HeadedNet(nn.Module):
    """A network split at its pooled features: (B, C, H, W) input to (probabilities, garment
    score). d2l's ResNet is a Sequential ending in its Linear, so the split is its last layer."""

    def __init__(
        self, net: nn.Sequential, temperature: float, garment: dict[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.body, self.head = net[:-1], Head(net[-1], temperature, garment)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(self.body(x))


class Classifier(nn.Module):
    """uint8 (B, 28, 28) images to (class probabilities, garment score): input transform,
    network, heads."""

    def __init__(
        self,
        net: nn.Sequential,
        spec: InputSpec,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        temperature: float = 1.0,
        garment: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.spec, self.channels_last, self.dtype = spec, channels_last, dtype
        self.scored = HeadedNet(net, temperature, garment)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = to_model_input(images, self.spec.size, self.spec.mean, self.spec.std).to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.scored(x)
