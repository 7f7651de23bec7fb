"""The served model as ONNX graphs beside its checkpoint: float32, and INT8 where it is as good.

    python -m model.export [--checkpoint PATH] [--int8 [--data-dir DIR]]

Writes <checkpoint>.onnx (uint8 (B, 28, 28) images in; calibrated probabilities "y" and the
garment score "garment" out; any batch)
and, when the checkpoint's metadata holds INT8 calibration ranges, <checkpoint>.int8.onnx. Each
graph records the checkpoint's graph key (weights hash, input transform, temperature, garment
head, INT8 record), so a stale graph is seen and rebuilt. --int8 first calibrates on
Fashion-MNIST training images, checks the INT8 graph on the whole test set (accuracy within
ACCURACY_DROP_MAX of float32, top-1 agreement at least AGREEMENT_MIN) and records the ranges and
that check in the metadata: afterwards the INT8 graph can be rebuilt anywhere without the data (a
Docker build, say).
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.cli import Parser, run
from model.images.silhouette import NATIVE_SIZE
from model.network.checkpoint import (
    SHIPPED_CHECKPOINT,
    Checkpoint,
    load_checkpoint,
    update_metadata,
)
from model.network.checkpoint_info import CheckpointInfo, graph_file
from model.network.classifier import Classifier, HeadedNet
from model.network.graphs import GRAPH_KEY, predictions, session
from model.network.net import fold_batch_norm

CALIBRATION_IMAGES = 1024
CALIBRATION_SEED = 0
ACCURACY_DROP_MAX = 0.002  # 0.2 points of Fashion-MNIST test accuracy
AGREEMENT_MIN = 0.995  # top-1 agreement with float32 on the test set


# The graph's outputs: class probabilities (B, classes) and the garment score (B,).
OUTPUTS = ("y", "garment")


def to_onnx(net: nn.Module, example: torch.Tensor, outputs: tuple[str, ...] = OUTPUTS) -> bytes:
    """ONNX bytes of `net` in eval mode: input "x" shaped like `example`, the named outputs (the
    served model's OUTPUTS), any batch."""
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
            output_names=list(outputs),
            dynamic_axes={"x": {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
            dynamo=False,
        )
    return buf.getvalue()


def keyed(graph: bytes, key: str) -> bytes:
    """The graph with the checkpoint's graph key in its metadata."""
    import onnx

    proto = onnx.load_from_string(graph)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = GRAPH_KEY, key
    return proto.SerializeToString()


def float_graph(ckpt: Checkpoint) -> bytes:
    """The float32 graph of the served model, not yet keyed (its bytes depend on the network
    alone, so an INT8 record can name them).

    From the native size up all of it, uint8 in and probabilities out, is one graph. ONNX has
    no antialiased resize, so below it the graph starts at the network and torch resizes first.
    """
    net = fold_batch_norm(ckpt.model).cpu()
    heads = {"temperature": ckpt.temperature, "garment": ckpt.garment_head}
    if ckpt.input_size >= NATIVE_SIZE:
        graph: nn.Module = Classifier(net, ckpt.input_spec, **heads)
        example = torch.zeros(1, NATIVE_SIZE, NATIVE_SIZE, dtype=torch.uint8)
    else:
        graph = HeadedNet(net, **heads)
        example = torch.zeros(1, ckpt.in_channels, ckpt.input_size, ckpt.input_size)
    return to_onnx(graph, example)


def _head_nodes(fp32: bytes) -> list[str]:
    """The heads on the pooled features, the classifier's Linear with the temperature and
    softmax and the garment head: kept in float.

    Quantized, the probabilities came out in steps of 1/255 (a confident 0.9776 read 0.9725, every
    small one 0.0039), too coarse for calibrated probabilities and the none-of-the-classes flag;
    the heads are 5,642 multiply-adds of the network's millions."""
    import onnx

    nodes = onnx.load_from_string(fp32).graph.node
    first_gemm = min(i for i, n in enumerate(nodes) if n.op_type in ("Gemm", "MatMul"))
    return [n.name for n in nodes[first_gemm:]]


REDUCE_RANGE = True


def _quantize(fp32: bytes, cache: Path, reader: Any = None) -> bytes:
    """Static QDQ INT8 (per-channel weights) of `fp32`; ranges from `reader` (saved to `cache`)
    or, with no reader, read from `cache`."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        raw, src, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        raw.write_bytes(fp32)
        # ONNX Runtime's advice, taken: shape inference and graph optimisation before the
        # quantizer (it asks for that in a warning at every export otherwise).
        quant_pre_process(raw, src)
        head = _head_nodes(src.read_bytes())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            quantize_static(
                src,
                out,
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                # 7-bit weights: without VNNI (AVX2 alone) ORT's u8s8 kernels saturate 8-bit
                # ones (onnxruntime docs, "quantization on x86-64 without VNNI").
                reduce_range=REDUCE_RANGE,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibration_cache_path=cache,
                nodes_to_exclude=head,
            )
        return out.read_bytes()


def calibrate_int8(fp32: bytes, images: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """The INT8 graph calibrated on `images` (N, 28, 28) uint8, and its ranges (JSON-able)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(np.array_split(images, max(1, len(images) // 64)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"x": batch}

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp, "ranges.json")
        int8 = _quantize(fp32, cache, Batches())
        return int8, json.loads(cache.read_text())


def int8_from_ranges(fp32: bytes, ranges: dict[str, Any]) -> bytes:
    """The INT8 graph from recorded calibration ranges: no data needed."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp, "ranges.json")
        cache.write_text(json.dumps(ranges))
        return _quantize(fp32, cache)


def int8_guard(fp32: bytes, int8: bytes, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Test accuracy of both graphs and their top-1 agreement; `passed` when INT8 may serve."""
    a, b = predictions(session(fp32), images), predictions(session(int8), images)
    acc_fp32, acc_int8 = float((a == labels).mean()), float((b == labels).mean())
    agreement = float((a == b).mean())
    return {
        "images": len(labels),
        "accuracy_fp32": round(acc_fp32, 4),
        "accuracy_int8": round(acc_int8, 4),
        "agreement": round(agreement, 4),
        "passed": acc_fp32 - acc_int8 <= ACCURACY_DROP_MAX and agreement >= AGREEMENT_MIN,
    }


def int8_record(ckpt: CheckpointInfo, fp32: bytes) -> dict[str, Any] | None:
    """The checkpoint's INT8 record when it applies to this (unkeyed) float32 graph."""
    record = ckpt.meta.get("int8")
    if not record or record.get("fp32_sha256") != hashlib.sha256(fp32).hexdigest():
        return None
    return dict(record)


def graphs(ckpt: Checkpoint, int8: bool = True) -> dict[str, bytes]:
    """The served graphs by precision: float32, and (unless int8 is False) INT8 when the
    metadata has ranges that apply to this float32 graph."""
    fp32 = float_graph(ckpt)
    out = {"fp32": keyed(fp32, ckpt.graph_key)}
    record = int8_record(ckpt, fp32) if int8 else None
    if record:
        out["int8"] = keyed(int8_from_ranges(fp32, record["ranges"]), ckpt.graph_key)
    return out


def write_graphs(ckpt: Checkpoint) -> list[Path]:
    """Write every graph of `graphs` beside the checkpoint; returns their paths."""
    written = []
    for precision, graph in graphs(ckpt).items():
        path = graph_file(ckpt.path or SHIPPED_CHECKPOINT, precision)
        path.write_bytes(graph)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    p = Parser(prog="python -m model.export", description=__doc__)
    p.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT), help="the .safetensors file")
    p.add_argument(
        "--int8",
        action="store_true",
        help="calibrate INT8 on training images, check it on the test set, record both",
    )
    p.add_argument("--data-dir", help="Fashion-MNIST idx files (for --int8)")
    args = p.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    if args.int8:
        if ckpt.input_size != NATIVE_SIZE:
            raise SystemExit("INT8 graphs are made for checkpoints at the native 28x28 input")
        from model.data.fashion_mnist import load_split

        train, test = load_split("train", args.data_dir), load_split("test", args.data_dir)
        pick = np.random.default_rng(CALIBRATION_SEED).choice(
            len(train.images), CALIBRATION_IMAGES, replace=False
        )
        fp32 = float_graph(ckpt)
        int8, ranges = calibrate_int8(fp32, train.images.numpy()[np.sort(pick)])
        guard = int8_guard(fp32, int8, test.images.numpy(), test.labels.numpy())
        print(json.dumps(guard))
        record = {
            "fp32_sha256": hashlib.sha256(fp32).hexdigest(),
            "calibration": {"images": CALIBRATION_IMAGES, "seed": CALIBRATION_SEED},
            "guard": guard,
            "ranges": ranges,
        }
        update_metadata(args.checkpoint, int8=record)
        ckpt = load_checkpoint(args.checkpoint)
    for path in write_graphs(ckpt):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    run("python -m model.export", main)
