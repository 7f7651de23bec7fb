"""/predict and /predict/batch between the body and the answer: the uploads read from the body,
run through the pipeline (decode -> batch -> predict), and the answer encoded: each image's
classes, the flag, the explain=true fields, and the envelope (model, device, per-stage timing)."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from app.errors import ApiError, echo
from app.protocol.schemas import (
    BatchItem,
    BatchPredictResponse,
    ClassScore,
    ModelRef,
    PredictResponse,
    Timing,
)
from app.protocol.uploads import Upload, uploads
from app.serving.decode import Prepared
from app.serving.engine import InferenceEngine
from app.serving.pipeline import Job, Outcome, Pipeline
from model.network.checkpoint_info import CheckpointInfo


@dataclass(frozen=True)
class Answer:
    """An encoded answer, and the seconds its stages took (for the metrics)."""

    body: bytes
    stages: dict[str, float]
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Uploads:
    """How a request's uploads are read: the field, its content type, the limits."""

    field: str
    content_type: str
    limit: int  # bytes per file
    most: int  # files per request


def prediction(probs: list[float], garment: float, ckpt: CheckpointInfo, top_k: int) -> dict:
    """One image's classes (the top_k most probable) and its none-of-the-classes flag."""
    names = ckpt.class_names
    best = sorted(range(len(probs)), key=probs.__getitem__, reverse=True)[:top_k]
    top = [ClassScore(label=names[i], class_id=i, probability=round(probs[i], 6)) for i in best]
    threshold = ckpt.flag_threshold
    return {
        "label": top[0].label,
        "class_id": top[0].class_id,
        "confidence": top[0].probability,
        "none_of_the_classes": threshold is not None and garment < threshold,
        "garment_score": round(float(garment), 6),
        "top_k": top,
    }


def explanation(prepared: Prepared, saliency: np.ndarray) -> dict[str, Any]:
    """The explain=true fields of one image's answer."""
    _, png = cv2.imencode(".png", prepared.image)
    return {
        "network_input": base64.b64encode(png.tobytes()).decode(),
        "network_input_box": [round(v, 4) for v in prepared.box],
        "saliency": np.round(saliency.astype(np.float64), 3).tolist(),
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def envelope(engine: InferenceEngine, start: float, stages: dict[str, float]) -> dict[str, Any]:
    """The model and version that answered, device and per-stage timing: every prediction
    answer carries them."""
    name, version = engine.served_as
    return {
        "model": ModelRef(name=name, version=str(version), checkpoint=engine.ckpt.short_hash),
        "device": str(engine.device),
        "timing_ms": Timing(
            **{stage: _ms(s) for stage, s in stages.items()},
            total=_ms(time.perf_counter() - start),
        ),
    }


def encode_predict(outcome: Outcome, engine: InferenceEngine, top_k: int, start: float) -> bytes:
    """/predict's JSON: one image; the explain fields only when they were asked for."""
    result, maps, ckpt = outcome.result, outcome.maps, engine.ckpt
    answer = PredictResponse(
        **prediction(result.probs[0], result.garment[0], ckpt, top_k),
        **(explanation(outcome.prepared[0], maps[0]) if maps is not None else {}),
        **envelope(engine, start, outcome.stages),
    )
    # Validated on construction: FastAPI's second pass through response_model is skipped.
    return answer.model_dump_json(exclude_unset=True).encode()


def encode_batch(
    outcome: Outcome,
    uploads: Sequence[Upload],
    engine: InferenceEngine,
    top_k: int,
    start: float,
) -> bytes:
    """/predict/batch's JSON: every image in order, each named by its file."""
    result, maps, ckpt = outcome.result, outcome.maps, engine.ckpt
    results = [
        BatchItem(
            filename=None if name is None else echo(name, 255),
            **prediction(p, g, ckpt, top_k),
            **(explanation(outcome.prepared[i], maps[i]) if maps is not None else {}),
        )
        for i, ((name, _), p, g) in enumerate(
            zip(uploads, result.probs, result.garment, strict=True)
        )
    ]
    answer = BatchPredictResponse(
        count=len(results), results=results, **envelope(engine, start, outcome.stages)
    )
    return answer.model_dump_json(exclude_unset=True).encode()


async def predict_one(
    body: bytes, form: Uploads, pipeline: Pipeline, top_k: int, explain: bool, start: float
) -> Answer:
    """/predict: the one upload of the body classified."""
    files = uploads(body, form.content_type, form.field, form.limit, form.most)
    if len(files) != 1:
        raise ApiError(422, f"{len(files)} files in field 'image'; send several to /predict/batch")
    outcome = await pipeline.run(Job(files, explain=explain))
    encoded = encode_predict(outcome, pipeline.engine, top_k, start)
    return Answer(encoded, outcome.stages)


async def predict_many(
    body: bytes, form: Uploads, pipeline: Pipeline, top_k: int, explain: bool, start: float
) -> Answer:
    """/predict/batch: every upload of the body classified, in order."""
    files = uploads(body, form.content_type, form.field, form.limit, form.most)
    outcome = await pipeline.run(Job(files, named=True, explain=explain))
    encoded = encode_batch(outcome, files, pipeline.engine, top_k, start)
    return Answer(encoded, outcome.stages)
