"""How the network runs: PyTorch (BN folded, channels_last, dtype, compile) or ONNX Runtime.

Each runner takes uint8 (B, 28, 28) images and returns (B, classes) probabilities on the CPU.
The measured effect of each choice is in README's performance section.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from model.export import to_onnx
from model.net import fold_batch_norm
from model.preprocess import NATIVE_SIZE, InputSpec, to_model_input

Backend = Literal["auto", "torch", "onnxruntime"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ModelOptions:
    """How the checkpoint's network becomes the model the engine runs."""

    backend: Backend = "auto"  # auto: onnxruntime on CPU when installed, else torch
    threads: int | None = None  # CPU intra-op threads; None: the library's own default
    fold_batch_norm: bool = True
    channels_last: bool = True
    precision: Precision = "auto"  # auto: fp16 on CUDA, fp32 on CPU (torch backend)
    compile: bool = False

    def dtype(self, device: torch.device) -> torch.dtype:
        """The torch backend's parameter and input dtype on `device`."""
        if self.precision == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        return PRECISIONS[self.precision]


def _threads(n: int) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def onnxruntime_installed() -> bool:
    """Whether the onnxruntime package can be imported."""
    return importlib.util.find_spec("onnxruntime") is not None


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


class Runner:
    """The served model on its device: uint8 (B, 28, 28) images in, probabilities out (CPU)."""

    name: str
    dtype: torch.dtype = torch.float32

    def __call__(self, images: Tensor) -> Tensor:
        raise NotImplementedError


class TorchRunner(Runner):
    """Eager PyTorch, optionally BN-folded, channels_last, half precision and compiled."""

    def __init__(
        self,
        net: nn.Module,
        device: torch.device,
        options: ModelOptions,
        spec: InputSpec,
        temperature: float = 1.0,
    ) -> None:
        if device.type == "cpu" and options.threads:
            torch.set_num_threads(options.threads)
        self.device = device
        self.dtype = options.dtype(device)
        net = fold_batch_norm(net) if options.fold_batch_norm else net.eval()
        net = net.to(device=device, dtype=self.dtype)
        if options.channels_last:
            net = net.to(memory_format=torch.channels_last)
        model = Classifier(net, spec, options.channels_last, self.dtype, temperature)
        # Batches vary from 1 to max_batch_size: compile once for a dynamic batch dimension.
        self.model = torch.compile(model, dynamic=True) if options.compile else model
        threads = f", {_threads(torch.get_num_threads())}" if device.type == "cpu" else ""
        self.name = f"torch {torch.__version__} ({str(self.dtype).removeprefix('torch.')}{threads})"

    @torch.inference_mode()
    def __call__(self, images: Tensor) -> Tensor:
        # uint8 crosses to the device (4x fewer bytes than float); resize and normalise there.
        return self.model(images.to(self.device, non_blocking=True)).cpu()


class OnnxRunner(Runner):
    """ONNX Runtime on the CPU: the whole forward in C++, without the GIL, on its own threads."""

    def __init__(
        self, net: nn.Module, options: ModelOptions, spec: InputSpec, temperature: float = 1.0
    ) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = options.threads or len(os.sched_getaffinity(0))
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # Spinning idle threads would take the cores the event loop and decoding need.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # At the native size all of Classifier, uint8 in and probabilities out, is one graph: one
        # call and one release of the GIL per batch. ONNX has no antialiased resize, so at other
        # sizes torch resizes and normalises first and the graph starts at the network.
        self.native, self.spec = spec.size == NATIVE_SIZE, spec
        graph: nn.Module = Classifier(fold_batch_norm(net), spec, temperature=temperature)
        example = torch.zeros(1, NATIVE_SIZE, NATIVE_SIZE, dtype=torch.uint8)
        if not self.native:
            graph = nn.Sequential(fold_batch_norm(net), Calibrated(temperature))
            example = torch.zeros(1, 1, spec.size, spec.size)
        self.session = ort.InferenceSession(
            to_onnx(graph, example), so, providers=["CPUExecutionProvider"]
        )
        self.name = f"onnxruntime {ort.__version__} (float32, {_threads(threads)})"

    def __call__(self, images: Tensor) -> Tensor:
        spec = self.spec
        x = images if self.native else to_model_input(images, spec.size, spec.mean, spec.std)
        return torch.from_numpy(self.session.run(None, {"x": x.numpy()})[0])


def build_runner(
    net: nn.Module,
    device: torch.device,
    options: ModelOptions,
    spec: InputSpec,
    temperature: float = 1.0,
) -> Runner:
    """The runner `options.backend` names ('auto' picks ONNX Runtime on a CPU when installed);
    its probabilities are softmax(logits / temperature)."""
    backend = options.backend
    if backend == "auto":
        backend = "onnxruntime" if device.type == "cpu" and onnxruntime_installed() else "torch"
    if backend == "onnxruntime":
        if device.type != "cpu":
            raise RuntimeError(
                "MODEL_BACKEND=onnxruntime runs on the CPU only; set MODEL_DEVICE=cpu or "
                "MODEL_BACKEND=torch"
            )
        if not onnxruntime_installed():
            raise RuntimeError(
                "MODEL_BACKEND=onnxruntime but onnxruntime is not installed "
                "(pip install onnxruntime onnx)"
            )
        return OnnxRunner(net, options, spec, temperature)
    return TorchRunner(net, device, options, spec, temperature)
