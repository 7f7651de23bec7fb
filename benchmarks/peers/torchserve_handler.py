"""TorchServe handler for the shipped network, the way TorchServe's docs write a custom one.

Runs in TorchServe's Python worker (in .venv-peers), not in this service. FASHION_ROOT names the
repository, so the worker imports the same network and photo preprocessing the service uses; the
benchmark then measures the servers, not two different pipelines. PEER_THREADS sets torch's
intra-op threads per worker.
"""

from __future__ import annotations

import os
import sys

import torch
from ts.torch_handler.base_handler import BaseHandler

sys.path.insert(0, os.environ["FASHION_ROOT"])

from model.images.silhouette import prepare_photo, to_model_input
from model.network.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint


class FashionHandler(BaseHandler):
    """Image bytes in (multipart field "image", or a raw body); label and confidence out."""

    def initialize(self, context: object) -> None:
        threads = int(os.environ.get("PEER_THREADS", "0"))
        if threads:
            torch.set_num_threads(threads)
        self.ckpt = load_checkpoint(os.environ.get("MODEL_CHECKPOINT", SHIPPED_CHECKPOINT))
        self.initialized = True

    def preprocess(self, data: list[dict[str, bytes]]) -> torch.Tensor:
        rows = [row.get("image") or row.get("data") or row.get("body") for row in data]
        return torch.stack([torch.from_numpy(prepare_photo(bytes(row))) for row in rows])  # type: ignore[arg-type]

    @torch.inference_mode()
    def inference(self, images: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        ckpt = self.ckpt
        return ckpt.model(to_model_input(images, ckpt.input_size, ckpt.mean, ckpt.std)).softmax(1)

    def postprocess(self, probs: torch.Tensor) -> list[dict[str, object]]:
        names = self.ckpt.class_names
        top = probs.max(1)
        return [
            {"label": names[int(i)], "confidence": float(p)}
            for p, i in zip(top.values, top.indices, strict=True)
        ]
