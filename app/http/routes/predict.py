"""POST /predict and /predict/batch: uploaded photos to class probabilities."""

from __future__ import annotations

import base64
import time
from typing import Any

import cv2
import numpy as np
from fastapi import APIRouter, Query, Request, Response

from app.config import Settings
from app.errors import ApiError, echo
from app.http.deps import ServicesDep
from app.protocol.multipart import MultipartError, TooManyPartsError, parse_multipart
from app.protocol.schemas import (
    BatchItem,
    BatchPredictResponse,
    ClassScore,
    ErrorResponse,
    ModelRef,
    PredictResponse,
    Timing,
)
from app.serving.decode import Prepared
from app.serving.engine import InferenceEngine
from app.serving.pipeline import BODY_SLACK, Deadline, read_body, too_many_images
from app.serving.pipeline import stages as stage_seconds
from model.network.checkpoint_info import CheckpointInfo

router = APIRouter(tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "malformed multipart body",
        401: "API key missing or wrong (only when API_KEY is set)",
        408: "the body did not arrive within BODY_TIMEOUT_S",
        413: "upload or image dimensions over the limit",
        415: "not an image, or not a format the service reads",
        422: "missing field, corrupt image, or bad parameter",
        503: "queue full or model not loaded (see Retry-After)",
        504: "no result within the request timeout",
    }.items()
}


def _upload_body(field: str, many: bool) -> dict[str, Any]:
    binary = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
    prop = {"type": "array", "items": binary} if many else binary
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {"type": "object", "required": [field], "properties": {field: prop}}
        }
    }
    if not many:
        content["image/*"] = {"schema": binary}
    return {"requestBody": {"required": True, "content": content}}


async def _uploads(
    request: Request, settings: Settings, field: str
) -> list[tuple[str | None, bytes]]:
    """(filename, bytes) of each file in multipart field `field`, or of a raw image/* body."""
    limit = settings.max_upload_bytes
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        body = await read_body(request, limit + BODY_SLACK)
        try:
            # The raw header: a boundary is case-sensitive (browsers use mixed case).
            raw_type = request.headers["content-type"]
            parts = parse_multipart(body, raw_type, settings.max_batch_images)
        except TooManyPartsError:
            raise too_many_images(settings.max_batch_images) from None
        except MultipartError as exc:
            raise ApiError(400, f"malformed multipart body: {exc}") from exc
        files = [(p.filename, p.data) for p in parts if p.name == field]
        if not files:
            raise ApiError(
                422, f"multipart field '{field}' is missing (send it as -F {field}=@file)"
            )
        for name, data in files:
            if len(data) > limit:
                raise ApiError(
                    413, f"'{echo(name or field)}' is {len(data):,} bytes; the limit is {limit:,}"
                )
        return files
    if content_type.startswith(("image/", "application/octet-stream")) and field == "image":
        return [(None, await read_body(request, limit))]
    raise ApiError(
        415,
        f"send the image as multipart field '{field}' (curl -F {field}=@photo.png)"
        + (" or as a raw body with an image/* content type" if field == "image" else "")
        + f"; got content type '{echo(content_type) or 'none'}'",
    )


def _prediction(
    probs: list[float], garment: float, ckpt: CheckpointInfo, top_k: int
) -> dict[str, Any]:
    names = ckpt.class_names
    best = sorted(range(len(probs)), key=probs.__getitem__, reverse=True)[:top_k]
    top = [ClassScore(label=names[i], class_id=i, probability=round(probs[i], 6)) for i in best]
    threshold = ckpt.flag_threshold
    return {
        "label": top[0].label,
        "class_id": top[0].class_id,
        "confidence": top[0].probability,
        "none_of_the_classes": threshold is not None and garment < threshold,
        "top_k": top,
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _envelope(engine: InferenceEngine, start: float, stages: dict[str, float]) -> dict[str, Any]:
    """Model, device and per-stage timing that every prediction answer carries."""
    return {
        "model": ModelRef(name=engine.ckpt.architecture, checkpoint=engine.ckpt.short_hash),
        "device": str(engine.device),
        "timing_ms": Timing(
            **{stage: _ms(s) for stage, s in stages.items()},
            total=_ms(time.perf_counter() - start),
        ),
    }


TOP_K_HELP = "how many classes to list (default DEFAULT_TOP_K)"
MAX_TOP_K = 10  # the number of classes
TopK = Query(None, ge=1, le=MAX_TOP_K, description=TOP_K_HELP)
# /predict reads top_k itself (FastAPI's parameter solving cost ~5 % of a small request) and
# declares it here, as FastAPI would for TopK.
TOP_K_PARAMETER = {
    "name": "top_k",
    "in": "query",
    "required": False,
    "description": TOP_K_HELP,
    "schema": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_TOP_K},
                         {"type": "null"}], "title": "Top K"},
}  # fmt: skip


EXPLAIN_HELP = (
    "also return the 28x28 the network saw (network_input, a base64 PNG; network_input_box, "
    "where it lies in the photo) and where the evidence for the answer lies (saliency, 28x28 "
    "values in [0, 1], by occlusion: 64 more images in the forward pass)"
)
Explain = Query(False, description=EXPLAIN_HELP)
EXPLAIN_PARAMETER = {
    "name": "explain",
    "in": "query",
    "required": False,
    "description": EXPLAIN_HELP,
    "schema": {"type": "boolean", "default": False, "title": "Explain"},
}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _explain(request: Request) -> bool:
    """The explain query parameter of a /predict request, read as FastAPI reads a bool."""
    raw = request.query_params.get("explain")
    if raw is None or raw.lower() in _FALSE:
        return False
    if raw.lower() in _TRUE:
        return True
    raise ApiError(422, f"query parameter explain: must be true or false, got '{echo(raw)}'")


def _explanation(prepared: Prepared, saliency: np.ndarray) -> dict[str, Any]:
    """The explain=true fields of one image's answer."""
    _, png = cv2.imencode(".png", prepared.image)
    return {
        "network_input": base64.b64encode(png.tobytes()).decode(),
        "network_input_box": [round(v, 4) for v in prepared.box],
        "saliency": np.round(saliency.astype(np.float64), 3).tolist(),
    }


def _top_k(request: Request, default: int) -> int:
    """The top_k query parameter of a /predict request, checked as TopK would check it."""
    raw = request.query_params.get("top_k")
    if raw is None:
        return default
    # isdecimal: exactly the digits int() reads ("²" is a digit it does not).
    if not raw.strip().isdecimal() or not 1 <= int(raw) <= MAX_TOP_K:
        raise ApiError(
            422,
            f"query parameter top_k: must be an integer from 1 to {MAX_TOP_K}, got '{echo(raw)}'",
        )
    return int(raw)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra={
        **_upload_body("image", many=False),
        "parameters": [TOP_K_PARAMETER, EXPLAIN_PARAMETER],
    },
    summary="Classify one clothing photo",
)
async def predict(request: Request, services: ServicesDep) -> Response:
    """Classify the photo in multipart field `image` (or a raw image/* body).

    Any photo works: it is turned into a Fashion-MNIST-like 28x28 image (orientation, transparency,
    grayscale, polarity, crop, square padding) before the network sees it.
    """
    start = time.perf_counter()
    pipeline, settings = services.pipeline, services.settings
    top_k = _top_k(request, settings.default_top_k)
    explain = _explain(request)
    async with Deadline(settings) as deadline:
        uploads = await _uploads(request, settings, "image")
        if len(uploads) != 1:
            raise ApiError(
                422, f"{len(uploads)} files in field 'image'; send several to /predict/batch"
            )
        deadline.body_received()
        if explain:
            prepared, result, maps = await pipeline.classify_explained(uploads)
        else:
            prepared, result = await pipeline.classify(uploads)
    stages = stage_seconds(prepared, result)
    services.metrics.observe_stages(**stages)
    engine = pipeline.engine
    answer = PredictResponse(
        **_prediction(result.probs[0], result.garment[0], engine.ckpt, top_k),
        **(_explanation(prepared[0], maps[0]) if explain else {}),
        **_envelope(engine, start, stages),
    )
    # Already validated on construction: skip FastAPI's second pass through response_model.
    # The explain fields appear only when asked for.
    return Response(answer.model_dump_json(exclude_unset=True), media_type="application/json")


@router.post(
    "/predict/batch",
    response_model=BatchPredictResponse,
    responses=ERRORS,
    openapi_extra=_upload_body("images", many=True),
    summary="Classify several photos in one forward pass",
    response_model_exclude_unset=True,
)
async def predict_batch(
    request: Request,
    services: ServicesDep,
    top_k: int | None = TopK,
    explain: bool = Explain,
) -> BatchPredictResponse:
    """Classify every file in the repeated multipart field `images`; results keep their order."""
    start = time.perf_counter()
    pipeline, settings = services.pipeline, services.settings
    async with Deadline(settings) as deadline:
        uploads = await _uploads(request, settings, "images")
        deadline.body_received()
        if explain:
            prepared, result, maps = await pipeline.classify_explained(uploads, named=True)
        else:
            prepared, result = await pipeline.classify(uploads, named=True)
    k = top_k or settings.default_top_k
    engine = pipeline.engine
    results = [
        BatchItem(
            filename=None if name is None else echo(name, 255),
            **_prediction(p, g, engine.ckpt, k),
            **(_explanation(prepared[i], maps[i]) if explain else {}),
        )
        for i, ((name, _), p, g) in enumerate(
            zip(uploads, result.probs, result.garment, strict=True)
        )
    ]
    stages = stage_seconds(prepared, result)
    services.metrics.observe_stages(**stages)
    return BatchPredictResponse(
        count=len(results), results=results, **_envelope(engine, start, stages)
    )
