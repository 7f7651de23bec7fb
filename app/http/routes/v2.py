"""The Open Inference Protocol (KServe "v2", as Triton speaks it) over REST, beside /predict.

Triton and KServe clients (tritonclient.http, kserve.InferenceRESTClient) call the model here
with JSON tensors or the binary tensor data extension. The requests share /predict's pipeline:
the same deadlines, admission, decoding, batching and error statuses; errors read
{"error": "..."} (app.http.handlers does that for every path under /v2).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.config import Settings
from app.errors import ApiError, echo
from app.http.deps import Services, ServicesDep
from app.http.error_docs import v2_responses
from app.http.flow import serve
from app.protocol.answers import Answer
from app.protocol.oip import (
    HEADER_LENGTH,
    PREFIX,
    infer,
    input_spec,
    output_spec,
)
from app.protocol.schemas import (
    V2Error,
    V2InferenceRequest,
    V2InferenceResponse,
    V2Live,
    V2ModelMetadata,
    V2ModelReady,
    V2Ready,
    V2ServerMetadata,
)
from app.protocol.uploads import BODY_SLACK
from app.serving.engine import InferenceEngine
from model.images.silhouette import NATIVE_SIZE
from model.network.checkpoint_info import CheckpointInfo

TAG = "open inference protocol (v2)"
router = APIRouter(prefix=PREFIX, tags=[TAG])
SERVER_NAME = "fashion-resnet"
EXTENSIONS = ["binary_tensor_data"]


def served_name(settings: Settings, ckpt: CheckpointInfo) -> str:
    """The name this server's one model answers to: MODEL_NAME, or the checkpoint's
    architecture."""
    return settings.model_name or ckpt.architecture


def path_values(settings: Settings, ckpt: CheckpointInfo) -> dict[str, str]:
    """The one valid value of each path parameter, for the OpenAPI document."""
    return {"model_name": served_name(settings, ckpt), "model_version": ckpt.short_hash}


def _model(services: Services, name: str, version: str | None) -> InferenceEngine:
    """The engine serving `name` (and `version`, when given): 404 for another model, 503 while
    it is loading."""
    served = served_name(services.settings, services.ckpt)
    if name != served:
        raise ApiError(404, f"unknown model '{echo(name)}'; this server serves '{served}'")
    engine = services.engine
    if version is not None and version != engine.ckpt.short_hash:
        raise ApiError(
            404,
            f"model '{served}' has no version '{echo(version)}'; "
            f"its version is '{engine.ckpt.short_hash}' (or leave the version out)",
        )
    return engine


async def _model_ready(services: Services, name: str, version: str | None) -> V2ModelReady:
    try:
        _model(services, name, version)
    except ApiError as exc:
        if exc.status != 503:
            raise
        raise ApiError(400, f"model '{echo(name)}' is not ready: {exc.detail}") from None
    return V2ModelReady(name=name, ready=True)


async def _metadata(services: Services, name: str, version: str | None) -> V2ModelMetadata:
    engine = _model(services, name, version)
    ckpt = engine.ckpt
    return V2ModelMetadata(
        name=name,
        versions=[ckpt.short_hash],
        platform=engine.runner.name.split()[0],
        inputs=input_spec(NATIVE_SIZE),
        outputs=output_spec(len(ckpt.class_names)),
    )


async def _infer(request: Request, services: Services) -> Response:
    name, version = request.path_params["model_name"], request.path_params.get("model_version")
    _model(services, name, version)
    pipeline, header_length = services.pipeline, request.headers.get(HEADER_LENGTH)

    async def exchange(body: bytes, start: float) -> Answer:
        return await infer(body, header_length, pipeline, name, start)

    return await serve(request, services, services.settings.max_upload_bytes + BODY_SLACK, exchange)


def _path_parameters(*names: str) -> list[dict[str, Any]]:
    """Path parameters declared for the document, for routes that read them from the request
    (FastAPI's parameter solving cost ~25 us of a v2 request's ~300 on the event loop)."""
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in names]  # fmt: skip


INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/V2InferenceRequest"},
                "example": {
                    "inputs": [
                        {"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8",
                         "data": [0] * (28 * 28)}
                    ],
                    "outputs": [{"name": "label"}, {"name": "probabilities"}],
                },
            },
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": f"binary tensor data extension: the JSON request, then each "
                f"input's raw data; header {HEADER_LENGTH} gives the JSON's length",
            },
        },
    },
}  # fmt: skip
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "when an output asks for binary_data: the JSON response, then the "
                f"outputs' raw data ({HEADER_LENGTH} gives the JSON's length)",
            }
        }
    },
    **v2_responses(V2Error, 400, 401, 404, 408, 413, 415, 422, 503, 504),
}
METADATA = {
    "response_model": V2ModelMetadata,
    "responses": v2_responses(V2Error, 401, 404, 503),
}
READY = {"response_model": V2ModelReady, "responses": v2_responses(V2Error, 400, 404)}
INFER = {"response_model": V2InferenceResponse, "responses": INFER_RESPONSES}
MODEL, VERSION = "/models/{model_name}", "/models/{model_name}/versions/{model_version}"


# Inference first: routes are matched in the order they are declared.
@router.post(
    MODEL + "/infer",
    summary="Inference",
    openapi_extra={**INFER_BODY, "parameters": _path_parameters("model_name")},
    **INFER,
)
async def model_infer(request: Request, services: ServicesDep) -> Response:
    """Classify images sent as the `image` input (BYTES [B]: image files, base64 in JSON) or
    the `pixels` input (UINT8 [B, 28, 28]). Outputs `probabilities` (FP32 [B, 10]) and `label`
    (BYTES [B]); the request's `outputs` list picks among them, each as JSON or binary data
    (`"parameters": {"binary_data": true}`)."""
    return await _infer(request, services)


@router.post(
    VERSION + "/infer",
    summary="Inference (one version)",
    openapi_extra={**INFER_BODY, "parameters": _path_parameters("model_name", "model_version")},
    **INFER,
)
async def version_infer(request: Request, services: ServicesDep) -> Response:
    """As above, for one version."""
    return await _infer(request, services)


@router.get("", response_model=V2ServerMetadata, summary="Server metadata")
async def server_metadata(request: Request) -> V2ServerMetadata:
    """The server's name, version and protocol extensions."""
    return V2ServerMetadata(name=SERVER_NAME, version=request.app.version, extensions=EXTENSIONS)


@router.get("/health/live", response_model=V2Live, summary="Server liveness")
async def server_live() -> V2Live:
    """200 while the process answers."""
    return V2Live(live=True)


@router.get(
    "/health/ready",
    response_model=V2Ready,
    responses=v2_responses(V2Error, 400),
    summary="Server readiness",
)
async def server_ready(services: ServicesDep) -> V2Ready:
    """200 once the model is loaded and warmed up; 400 before (the protocol's 4xx for false)."""
    if not services.ready:
        raise ApiError(400, "not ready: the model is not loaded and warmed up yet")
    return V2Ready(ready=True)


@router.get(MODEL, summary="Model metadata", **METADATA)
async def model_metadata(services: ServicesDep, model_name: str) -> V2ModelMetadata:
    """The model's name, versions, platform, and its inputs' and outputs' names, datatypes and
    shapes."""
    return await _metadata(services, model_name, None)


@router.get(VERSION, summary="Model metadata (one version)", **METADATA)
async def version_metadata(
    services: ServicesDep, model_name: str, model_version: str
) -> V2ModelMetadata:
    """As above, for one version: the checkpoint's short sha256."""
    return await _metadata(services, model_name, model_version)


@router.get(MODEL + "/ready", summary="Model readiness", **READY)
async def model_ready(services: ServicesDep, model_name: str) -> V2ModelReady:
    """200 once the model can infer; 400 before (the protocol's 4xx for false)."""
    return await _model_ready(services, model_name, None)


@router.get(VERSION + "/ready", summary="Model readiness (one version)", **READY)
async def version_ready(services: ServicesDep, model_name: str, model_version: str) -> V2ModelReady:
    """As above, for one version."""
    return await _model_ready(services, model_name, model_version)


# The request body is read by app.protocol.oip, not by FastAPI: its schema is added to the document.
OPENAPI_MODELS = (V2InferenceRequest,)
