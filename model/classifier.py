"""The served model as one module: uint8 (B, 28, 28) images in, calibrated probabilities out.

Eager PyTorch runs it; model.export turns it into the ONNX graph ONNX Runtime runs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from model.meta import InputSpec
from model.preprocess import to_model_input


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


class Classifier(nn.Module):
    """uint8 (B, 28, 28) images to class probabilities: input transform, network, softmax."""

    def __init__(
        self,
        net: nn.Module,
        spec: InputSpec,
        channels_last: bool = False,
        dtype: torch.dtype = torch.float32,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        self.net, self.spec, self.channels_last, self.dtype = net, spec, channels_last, dtype
        self.head = Calibrated(temperature)

    def forward(self, images: Tensor) -> Tensor:
        x = to_model_input(images, self.spec.size, self.spec.mean, self.spec.std).to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.net(x))
