"""What every runner is: the model options it is built from, and uint8 images in, Scores
out. The base the ONNX Runtime and PyTorch runners share, with no torch and no runner imported."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

Backend = Literal["auto", "torch", "onnxruntime"]
Precision = Literal["auto", "fp32", "fp16", "bf16", "int8"]


@dataclass(frozen=True)
class ModelOptions:
    """How the checkpoint's network becomes the model the engine runs."""

    backend: Backend = "auto"  # auto: onnxruntime on CPU when installed, else torch
    threads: int | None = None  # CPU intra-op threads; None: the library's own default
    fold_batch_norm: bool = True
    channels_last: bool = True
    # auto: fp16 on CUDA; on the CPU INT8 where the CPU has 8-bit dot products and the
    # checkpoint's INT8 graph passed its accuracy check, else fp32
    precision: Precision = "auto"
    compile: bool = False


class Scores(NamedTuple):
    """What the network says of a batch of images."""

    probs: np.ndarray  # (B, classes) float32, calibrated class probabilities
    garment: np.ndarray  # (B,) float32: under the checkpoint's flag threshold, none of the classes


def installed(package: str) -> bool:
    """Whether a package can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


class Runner:
    """The served model on its device: uint8 (B, 28, 28) images in, Scores out."""

    name: str
    precision: str = "fp32"
    why: str = ""  # how the precision was chosen, for the start-up log

    @property
    def dtype(self) -> str:
        """The precision as /model reports it: float32, float16, bfloat16 or int8."""
        return {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}.get(
            self.precision, self.precision
        )

    def __call__(self, images: np.ndarray) -> Scores:
        raise NotImplementedError
