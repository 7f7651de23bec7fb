"""The naive baseline: a sync FastAPI endpoint, PIL resize, one forward pass per request.

What most people write first; serve_load.py measures the service against it.
    uvicorn --app-dir benchmarks naive_server:create_app --factory --port 8001
"""

from __future__ import annotations

import os

import numpy as np
import torch
from fastapi import FastAPI, File, UploadFile
from PIL import Image

from model.network.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint


def create_app() -> FastAPI:
    """A FastAPI app serving MODEL_CHECKPOINT (default: the shipped one) the plain way."""
    ckpt = load_checkpoint(os.environ.get("MODEL_CHECKPOINT", SHIPPED_CHECKPOINT))
    model = ckpt.model.eval()
    mean, std, size = ckpt.mean, ckpt.std, ckpt.input_size
    app = FastAPI(title="naive fashion-resnet")

    @app.post("/predict")
    def predict(image: UploadFile = File(...)) -> dict[str, object]:  # noqa: B008
        img = Image.open(image.file).convert("L").resize((size, size))
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        with torch.no_grad():
            probs = model(((x - mean) / std)[None, None]).softmax(1)[0]
        i = int(probs.argmax())
        return {"label": ckpt.class_names[i], "confidence": float(probs[i])}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
