"""The Open Inference Protocol (KServe "v2", as Triton speaks it) over REST, beside /predict.

Triton and KServe clients (tritonclient.http, kserve.InferenceRESTClient) call the model here
with JSON tensors or the binary tensor data extension. The requests share /predict's pipeline:
the same deadlines, admission, decoding, batching and error statuses; errors read
{"error": "..."} (app.http.handlers does that for every path under /v2).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from app.errors import ApiError, echo
from app.http.deps import Services, ServicesDep
from app.http.error_docs import responses, v2_responses
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
    V2RepositoryModel,
    V2ServerMetadata,
)
from app.protocol.uploads import BODY_SLACK
from app.serving import repository
from app.serving.engine import InferenceEngine
from model.images.silhouette import NATIVE_SIZE

TAG = "open inference protocol (v2)"
router = APIRouter(prefix=PREFIX, tags=[TAG])
SERVER_NAME = "fashion-resnet"
EXTENSIONS = ["binary_tensor_data"]


def _model(services: Services, name: str, version: str | None) -> InferenceEngine:
    """The engine serving `name` (its latest ready version, or `version`): 400 for a bad name or
    version, 404 for a model or version that is not ready, 503 before start-up ends."""
    services.pipeline  # noqa: B018  # 503 while the service is starting
    engine = services.repository.resolve(name, version).engine
    assert engine is not None  # a ready version has one
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
        versions=[str(v) for v in sorted(services.repository.ready(name))],
        platform=engine.runner.name.split()[0],
        inputs=input_spec(NATIVE_SIZE),
        outputs=output_spec(len(ckpt.class_names)),
    )


async def _infer(request: Request, services: Services) -> Response:
    name, version = request.path_params["model_name"], request.path_params.get("model_version")
    header_length = request.headers.get(HEADER_LENGTH)
    with services.serving(name, version) as pipeline:

        async def exchange(body: bytes, start: float) -> Answer:
            return await infer(body, header_length, pipeline, name, start)

        limit = services.settings.max_upload_bytes + BODY_SLACK
        return await serve(request, services, limit, exchange)


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
    "responses": responses(V2Error, 400, 401, 404, 503, s400="not a model name or version"),
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
    """As above, for one version (a positive integer: its folder in the model repository)."""
    return await _metadata(services, model_name, model_version)


@router.get(MODEL + "/ready", summary="Model readiness", **READY)
async def model_ready(services: ServicesDep, model_name: str) -> V2ModelReady:
    """200 once the model can infer; 400 before (the protocol's 4xx for false)."""
    return await _model_ready(services, model_name, None)


@router.get(VERSION + "/ready", summary="Model readiness (one version)", **READY)
async def version_ready(services: ServicesDep, model_name: str, model_version: str) -> V2ModelReady:
    """As above, for one version."""
    return await _model_ready(services, model_name, model_version)


# The repository extension, as Triton serves it: tritonclient's get_model_repository_index,
# load_model and unload_model call these. Load and unload need MODEL_CONTROL=explicit.
REPOSITORY = {
    "responses": responses(
        V2Error, 400, 401, 404, 409, s400="a bad model name, or the model failed to load (why)"
    )
}


def _control(services: Services) -> None:
    """409 unless the settings let calls load and unload models."""
    mode = services.settings.model_control
    if mode != "explicit":
        raise ApiError(
            409,
            f"models are not loaded or unloaded by call here (MODEL_CONTROL={mode}); "
            "start the service with MODEL_CONTROL=explicit",
        )


@router.post(
    "/repository/index",
    response_model=list[V2RepositoryModel],
    summary="Repository index",
    **REPOSITORY,
)
async def repository_index(services: ServicesDep) -> list[V2RepositoryModel]:
    """Every version on disk or loaded, with its state (READY, UNAVAILABLE with its reason...)."""
    return [V2RepositoryModel(**row) for row in services.repository.index()]


@router.post("/repository/models/{model_name}/load", summary="Load a model", **REPOSITORY)
async def repository_load(services: ServicesDep, model_name: str) -> Response:
    """Load the model's latest version; it takes traffic once warmed up, and the versions it
    replaces finish their requests first (a reload when it is loaded). 400 with the reason when
    the checkpoint does not load: what was serving keeps serving."""
    _control(services)
    entry = await services.repository.load(model_name)
    if entry.state != repository.READY:
        raise ApiError(400, f"model '{model_name}' version {entry.version} {entry.reason}")
    return Response(status_code=200)


@router.post("/repository/models/{model_name}/unload", summary="Unload a model", **REPOSITORY)
async def repository_unload(services: ServicesDep, model_name: str) -> Response:
    """Stop serving the model once its requests finish; 409 for the default model while it is
    the only one ready."""
    _control(services)
    await services.repository.unload(model_name)
    return Response(status_code=200)


# The request body is read by app.protocol.oip, not by FastAPI: its schema is added to the document.
OPENAPI_MODELS = (V2InferenceRequest,)
