"""The PyTorch runner: any device, BN folded, channels_last, half precision, compiled.

Imported only when the torch backend is chosen, so the CPU image can leave torch out.
"""

from __future__ import annotations

import numpy as np
import torch

from app.serving.runner import ModelOptions, Runner, Scores
from model.network.checkpoint import as_checkpoint
from model.network.checkpoint_info import CheckpointInfo
from model.network.classifier import Classifier
from model.network.net import fold_batch_norm

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def torch_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The parameter and input dtype: 'auto' is fp16 on CUDA, fp32 on the CPU."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise RuntimeError(f"MODEL_PRECISION={precision} is for MODEL_BACKEND=onnxruntime")
    return PRECISIONS[precision]


class TorchRunner(Runner):
    """Eager PyTorch, optionally BN-folded, channels_last, half precision and compiled."""

    def __init__(self, ckpt: CheckpointInfo, device: str, options: ModelOptions) -> None:
        dev = torch.device(device)
        if dev.type == "cpu" and options.threads:
            torch.set_num_threads(options.threads)
        full = as_checkpoint(ckpt)
        self.device = dev
        self.torch_dtype = torch_dtype(options.precision, dev)
        self.precision = {dtype: name for name, dtype in PRECISIONS.items()}[self.torch_dtype]
        self.why = "asked for" if options.precision != "auto" else f"default on {dev.type}"
        net = fold_batch_norm(full.model) if options.fold_batch_norm else full.model.eval()
        net = net.to(device=dev, dtype=self.torch_dtype)
        if options.channels_last:
            net = net.to(memory_format=torch.channels_last)
        model = Classifier(
            net,
            full.input_spec,
            options.channels_last,
            self.torch_dtype,
            full.temperature,
            full.garment_head,
        )
        # Batches vary from 1 to max_batch_size: compile once for a dynamic batch dimension.
        self.model = torch.compile(model, dynamic=True) if options.compile else model
        threads = torch.get_num_threads()
        extra = f", {threads} thread{'s' if threads > 1 else ''}" if dev.type == "cpu" else ""
        self.name = f"torch {torch.__version__} ({self.precision}{extra})"

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> Scores:
        # uint8 crosses to the device (4x fewer bytes than float); resize and normalise there.
        x = torch.from_numpy(images).to(self.device, non_blocking=True)
        probs, garment = self.model(x)
        return Scores(probs.float().cpu().numpy(), garment.float().cpu().numpy())
