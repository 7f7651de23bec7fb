"""GET /model and /model/summary: what is being served, layer by layer."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Query

from app.http.deps import ServicesDep
from app.http.error_docs import responses
from app.http.query import Model, ModelVersion
from app.protocol.schemas import ErrorResponse, LayerInfo, ModelInfo, SummaryResponse
from model.network.checkpoint_info import ARCHITECTURE
from model.network.shapes import MAX_INPUT, MIN_INPUT, layer_rows, resnet18_layers

router = APIRouter(prefix="/model", tags=["model"])

ERRORS = responses(
    ErrorResponse,
    400,
    401,
    404,
    422,
    503,
    s400="not a model name or version",
    s401="API key missing or wrong (when API_KEY is set)",
    s404="no such model or version is ready",
    s422="bad parameter",
    s503="model not loaded yet",
)


# Shapes and counts do not depend on the weights: they are worked out by arithmetic
# (model.network.shapes, checked against forward hooks on the real network), about 0.1 ms a
# summary, and
# every (input size, depth) pair fits in the cache, so a flood of distinct sizes costs little.
@functools.lru_cache(maxsize=(MAX_INPUT - MIN_INPUT + 1) * 3)
def _summary(num_classes: int, in_channels: int, input_size: int, depth: int) -> SummaryResponse:
    tree = resnet18_layers(num_classes, in_channels)
    rows = layer_rows(tree, input_size, in_channels, depth)
    return SummaryResponse(
        architecture=ARCHITECTURE,
        input_shape=[1, in_channels, input_size, input_size],
        depth=depth,
        layers=[
            LayerInfo(name=r.name, type=r.type, output_shape=list(r.output_shape), params=r.params)
            for r in rows
        ],
        total_params=tree.params,
        trainable_params=tree.params,  # a served network trains nothing: all are trainable ones
    )


@router.get("", response_model=ModelInfo, responses=ERRORS)
async def model_info(
    services: ServicesDep, model: str | None = Model, version: str | None = ModelVersion
) -> ModelInfo:
    """Classes, input size, device, dtype, backend and the checkpoint's metadata and hash."""
    engine = services.engine_of(model, version)
    ckpt = engine.ckpt
    return ModelInfo(
        architecture=ckpt.architecture,
        classes=ckpt.class_names,
        input_size=ckpt.input_size,
        in_channels=ckpt.in_channels,
        device=str(engine.device),
        dtype=engine.runner.dtype,
        backend=engine.runner.name,
        checkpoint=ckpt.short_hash,
        checkpoint_file=ckpt.path.name if ckpt.path else "",  # the name only: paths stay private
        metadata=ckpt.meta,
    )


@router.get(
    "/summary",
    response_model=SummaryResponse,
    responses=ERRORS,
)
async def model_summary(
    services: ServicesDep,
    input_size: int | None = Query(
        None,
        ge=MIN_INPUT,
        le=MAX_INPUT,
        description=f"height and width, {MIN_INPUT}-{MAX_INPUT}; default the served size",
    ),
    depth: int = Query(1, ge=1, le=3, description="1 = top-level layers, 2 = blocks, 3 = all"),
    model: str | None = Model,
    version: str | None = ModelVersion,
) -> SummaryResponse:
    """Per-layer output shapes and parameter counts for a (1, C, S, S) input, as d2l prints."""
    ckpt = services.engine_of(model, version).ckpt
    size = input_size if input_size is not None else ckpt.input_size
    return _summary(ckpt.num_classes, ckpt.in_channels, size, depth)
