"""TorchServe handler running the service's own shipped INT8 ONNX graph with ONNX Runtime.

The like-for-like peer: the same graph the service serves, the same photo preprocessing, and
TorchServe's Java frontend taking the HTTP. Runs in TorchServe's Python worker (.venv-peers);
FASHION_ROOT names the repository, PEER_THREADS ONNX Runtime's intra-op threads per worker,
PEER_GRAPH the graph (default the shipped INT8 one).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnxruntime as ort
from ts.torch_handler.base_handler import BaseHandler

sys.path.insert(0, os.environ["FASHION_ROOT"])

from model.images.silhouette import prepare_photo
from model.network.checkpoint_info import SHIPPED_CHECKPOINT, graph_file, read_metadata


class FashionOrtHandler(BaseHandler):
    """Image bytes in (multipart field "image", or a raw body); label and confidence out."""

    def initialize(self, context: object) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("PEER_THREADS", "1"))
        options.inter_op_num_threads = 1
        graph = os.environ.get("PEER_GRAPH") or str(graph_file(SHIPPED_CHECKPOINT, "int8"))
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        self.names = read_metadata(SHIPPED_CHECKPOINT)["class_names"]
        self.initialized = True

    def preprocess(self, data: list[dict[str, bytes]]) -> np.ndarray:
        rows = [row.get("image") or row.get("data") or row.get("body") for row in data]
        return np.stack([prepare_photo(bytes(row)) for row in rows])  # type: ignore[arg-type]

    def inference(self, images: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        probs, _garment = self.session.run(None, {"x": images})
        return np.asarray(probs)

    def postprocess(self, probs: np.ndarray) -> list[dict[str, object]]:
        top = probs.argmax(1)
        return [
            {"label": self.names[int(i)], "confidence": float(p[i])}
            for p, i in zip(probs, top, strict=True)
        ]
