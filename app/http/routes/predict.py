"""POST /predict and /predict/batch: uploaded photos to class probabilities.

Each route is an adapter over app.http.flow: the body's limit, and the exchange of
app.protocol.answers that reads its uploads, runs them and encodes the answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.http.deps import ServicesDep
from app.http.error_docs import responses
from app.http.flow import serve
from app.http.query import (
    PARAMETERS,
    Explain,
    Model,
    ModelVersion,
    TopK,
    explain_of,
    top_k_of,
)
from app.protocol.answers import Answer, Uploads, predict_many, predict_one
from app.protocol.schemas import BatchPredictResponse, ErrorResponse, PredictResponse
from app.protocol.uploads import body_limit

router = APIRouter(tags=["predict"])
ERRORS = responses(ErrorResponse, 400, 401, 404, 408, 413, 415, 422, 503, 504)


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


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra={**_upload_body("image", many=False), "parameters": PARAMETERS},
    summary="Classify one clothing photo",
)
async def predict(request: Request, services: ServicesDep) -> Response:
    """Classify the photo in multipart field `image` (or a raw image/* body).

    Any photo works: it is turned into a Fashion-MNIST-like 28x28 image (orientation, transparency,
    grayscale, polarity, crop, square padding) before the network sees it.
    """
    settings, query = services.settings, request.query_params
    top_k, explain = top_k_of(request, settings.default_top_k), explain_of(request)
    content_type = request.headers.get("content-type", "")
    form = Uploads("image", content_type, settings.max_upload_bytes, settings.max_batch_images)
    limit = body_limit(content_type, form.field, form.limit)
    with services.serving(query.get("model"), query.get("version")) as pipeline:

        async def exchange(body: bytes, start: float) -> Answer:
            return await predict_one(body, form, pipeline, top_k, explain, start)

        return await serve(request, services, limit, exchange)


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
    model: str | None = Model,
    version: str | None = ModelVersion,
) -> Response:
    """Classify every file in the repeated multipart field `images`; results keep their order."""
    settings = services.settings
    content_type = request.headers.get("content-type", "")
    form = Uploads("images", content_type, settings.max_upload_bytes, settings.max_batch_images)
    limit = body_limit(content_type, form.field, form.limit)
    k = top_k or settings.default_top_k
    with services.serving(model, version) as pipeline:

        async def exchange(body: bytes, start: float) -> Answer:
            return await predict_many(body, form, pipeline, k, explain, start)

        return await serve(request, services, limit, exchange)
