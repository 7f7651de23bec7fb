"""Exported ONNX graphs at run time, without torch: sessions, their keys, predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

GRAPH_KEY = "fashion_resnet_graph_key"  # the ONNX metadata field that holds the graph key


def session(graph: bytes | Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session for a graph (bytes or file), all optimisations on."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # Spinning idle threads would take the cores the event loop and decoding need.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(graph) if isinstance(graph, Path) else graph
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def graph_key_of(sess: Any) -> str | None:
    """The graph key an ONNX Runtime session's model was exported with (None: not ours)."""
    key = sess.get_modelmeta().custom_metadata_map.get(GRAPH_KEY)
    return None if key is None else str(key)


def predictions(sess: Any, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """Top-1 class of every (28, 28) uint8 image."""
    out = [sess.run(None, {"x": images[i : i + batch]})[0] for i in range(0, len(images), batch)]
    return np.concatenate(out).argmax(1)
