"""The network as ONNX, for runtimes other than PyTorch (ONNX Runtime in the service)."""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn


def to_onnx(net: nn.Module, example: torch.Tensor) -> bytes:
    """ONNX bytes of `net` in eval mode: input "x" shaped like `example`, output "y", any batch."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter takes 0.2 s here against 7 s for the torch.export one (which
        # also needs onnxscript); this ResNet has no control flow that would need the new one.
        # Its tracer warns of shape checks turning into constants: shapes are fixed but batch.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            net.eval(),
            (example,),
            buf,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            dynamo=False,
        )
    return buf.getvalue()
