"""How the network runs: ONNX Runtime on the CPU (float32 or INT8), or PyTorch (any device).

Each runner takes uint8 (B, 28, 28) images as a numpy array and returns Scores: (B, classes)
float32 probabilities and (B,) garment scores. This module imports no torch: the CPU image serves
without it, from the ONNX graphs exported beside the checkpoint (model.export). Where torch is
installed, a missing or stale graph is exported at start-up instead. The measured effect of each
choice is in docs/performance.md.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from app.serving.runner import ModelOptions, Precision, Runner, Scores, cpu_flags, installed
from model.images.silhouette import NATIVE_SIZE
from model.network.checkpoint_info import SHIPPED_CHECKPOINT, CheckpointInfo, graph_file
from model.network.graphs import graph_key_of, session

log = logging.getLogger("app.serving.onnx_runner")

# CPU features where ONNX Runtime's INT8 kernels beat float32: 8-bit dot products (VNNI, AMX;
# 1.6-1.8x on an AVX-512 VNNI EPYC), and AVX2's u8s8 multiply-add, exact with the graph's 7-bit
# weights (1.6-2.4x on an AVX2 EPYC, the same 10,000 test answers). Without them, float32.
INT8_CPU_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")


def int8_allowed(ckpt: CheckpointInfo) -> tuple[bool, str]:
    """Whether the checkpoint's INT8 graph passed its accuracy check, and what it measured."""
    guard = (ckpt.meta.get("int8") or {}).get("guard")
    if not guard:
        return False, "no INT8 calibration in the checkpoint (python -m model.export --int8)"
    measured = (
        f"test accuracy {guard['accuracy_int8']} vs {guard['accuracy_fp32']}, "
        f"top-1 agreement {guard['agreement']}"
    )
    return bool(guard["passed"]), measured


def choose_cpu_precision(requested: Precision, ckpt: CheckpointInfo) -> tuple[str, str]:
    """ONNX Runtime's precision on this CPU for this checkpoint, and why."""
    allowed, measured = int8_allowed(ckpt)
    if requested == "int8":
        if not allowed:
            raise RuntimeError(f"MODEL_PRECISION=int8 but the INT8 check did not pass: {measured}")
        return "int8", f"asked for ({measured})"
    if requested not in ("auto", "fp32"):
        raise RuntimeError(f"MODEL_PRECISION={requested} needs MODEL_BACKEND=torch")
    if requested == "fp32":
        return "fp32", "asked for"
    int8_flags = sorted(cpu_flags().intersection(INT8_CPU_FLAGS))
    if ckpt.input_size != NATIVE_SIZE:
        return "fp32", "INT8 graphs are made at the native 28x28 input only"
    if not allowed:
        return "fp32", measured
    if not int8_flags:
        if not installed("torch") and not _current_graph(ckpt, "fp32"):
            # A clone served without torch: the INT8 graph is the one shipped beside the
            # checkpoint (the float32 one is a 45 MB build output); slower here, but it serves.
            return "int8", (
                "no float32 graph beside the checkpoint and no torch to export one, so the "
                f"shipped INT8 graph, though the CPU has no AVX2; {measured}"
            )
        return "fp32", "the CPU has no AVX2 and no 8-bit dot products (VNNI/AMX)"
    return "int8", f"the CPU has {', '.join(int8_flags)}; {measured}"


def _current_graph(ckpt: CheckpointInfo, precision: str) -> bool:
    """Whether the graph file beside the checkpoint exists and carries its graph key."""
    path = graph_file(ckpt.path or SHIPPED_CHECKPOINT, precision)
    return path.is_file() and graph_key_of(session(path, 1)) == ckpt.graph_key


def _session(ckpt: CheckpointInfo, precision: str, threads: int) -> Any:
    """An ONNX Runtime session of a current graph of the checkpoint: the file beside the
    checkpoint when its key matches, else one exported now (torch needed) and saved there when
    the folder is writable."""
    path = graph_file(ckpt.path or SHIPPED_CHECKPOINT, precision)
    if path.is_file():
        sess = session(path, threads)
        if graph_key_of(sess) == ckpt.graph_key:
            return sess
    if not installed("torch"):
        raise RuntimeError(
            f"no current {precision} ONNX graph at {path} and no torch to export one: run "
            "`python -m model.export` where torch is installed (the CPU Docker image does)"
        )
    from model.export import graphs
    from model.network.checkpoint import as_checkpoint

    graph = graphs(as_checkpoint(ckpt), int8=precision == "int8").get(precision)
    if graph is None:
        raise RuntimeError("the checkpoint's INT8 ranges are for another float32 graph")
    try:
        path.write_bytes(graph)
        log.info("exported %s", path)
    except OSError:
        pass  # a read-only install: the graph lives in memory only
    return session(graph, threads)


class OnnxRunner(Runner):
    """ONNX Runtime on the CPU: the whole forward in C++, without the GIL, on its own threads."""

    def __init__(self, ckpt: CheckpointInfo, options: ModelOptions) -> None:
        self.precision, self.why = choose_cpu_precision(options.precision, ckpt)
        threads = options.threads or len(os.sched_getaffinity(0))
        self.session = _session(ckpt, self.precision, threads)
        self.spec, self.whole = ckpt.input_spec, ckpt.input_size >= NATIVE_SIZE
        version = __import__("onnxruntime").__version__
        self.name = f"onnxruntime {version} ({self.precision}, {_threads(threads)})"

    def __call__(self, images: np.ndarray) -> Scores:
        x = images
        if not self.whole:  # the graph starts at the network: torch resizes and normalises
            import torch

            from model.images.silhouette import to_model_input

            spec = self.spec
            x = to_model_input(torch.from_numpy(images), spec.size, spec.mean, spec.std).numpy()
        probs, garment = self.session.run(None, {"x": x})
        return Scores(np.asarray(probs), np.asarray(garment))


def _threads(n: int) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def build_runner(ckpt: CheckpointInfo, device: str, options: ModelOptions) -> Runner:
    """The runner `options.backend` names ('auto': ONNX Runtime on a CPU when installed)."""
    backend = options.backend
    if backend == "auto":
        backend = "onnxruntime" if device == "cpu" and installed("onnxruntime") else "torch"
    if backend == "onnxruntime":
        if device != "cpu":
            raise RuntimeError(
                "MODEL_BACKEND=onnxruntime runs on the CPU only; set MODEL_DEVICE=cpu or "
                "MODEL_BACKEND=torch"
            )
        if not installed("onnxruntime"):
            raise RuntimeError(
                "MODEL_BACKEND=onnxruntime but onnxruntime is not installed "
                "(pip install onnxruntime)"
            )
        return OnnxRunner(ckpt, options)
    if not installed("torch"):
        raise RuntimeError(
            f"MODEL_BACKEND={backend} on {device} needs torch, which is not installed"
        )
    from app.serving.torch_runner import TorchRunner

    return TorchRunner(ckpt, device, options)
