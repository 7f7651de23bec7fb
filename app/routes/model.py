"""GET /model and /model/summary: what is being served, layer by layer."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from app.deps import EngineDep, SettingsDep
from app.errors import ApiError
from app.schemas import ErrorResponse, LayerInfo, ModelInfo, SummaryResponse
from model.net import ARCHITECTURE, resnet18
from model.summary import layer_summary

router = APIRouter(prefix="/model", tags=["model"])

MIN_INPUT, MAX_INPUT = 16, 512


@functools.lru_cache(maxsize=64)
def _summary(num_classes: int, in_channels: int, input_size: int, depth: int) -> SummaryResponse:
    # A fresh network of the same shape: shapes and counts do not depend on the weights, and the
    # served model's hooks must never see a summary pass interleaved with real requests.
    net = resnet18(num_classes=num_classes, in_channels=in_channels)
    rows = layer_summary(net, input_size, in_channels, depth)
    total = sum(p.numel() for p in net.parameters())
    return SummaryResponse(
        architecture=ARCHITECTURE,
        input_shape=[1, in_channels, input_size, input_size],
        depth=depth,
        layers=[
            LayerInfo(name=r.name, type=r.type, output_shape=list(r.output_shape), params=r.params)
            for r in rows
        ],
        total_params=total,
        trainable_params=sum(p.numel() for p in net.parameters() if p.requires_grad),
    )


@router.get("", response_model=ModelInfo, responses={503: {"model": ErrorResponse}})
async def model_info(engine: EngineDep, settings: SettingsDep) -> ModelInfo:
    """Classes, input size, device, dtype, backend and the checkpoint's metadata and hash."""
    ckpt = engine.ckpt
    return ModelInfo(
        architecture=ckpt.architecture,
        classes=ckpt.class_names,
        input_size=ckpt.input_size,
        in_channels=ckpt.in_channels,
        device=str(engine.device),
        dtype=str(engine.runner.dtype).removeprefix("torch."),
        backend=engine.runner.name,
        checkpoint=ckpt.short_hash,
        checkpoint_path=str(settings.model_checkpoint),
        metadata=ckpt.meta,
    )


@router.get(
    "/summary",
    response_model=SummaryResponse,
    responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def model_summary(
    engine: EngineDep,
    input_size: int | None = Query(
        None, description=f"height and width, {MIN_INPUT}-{MAX_INPUT}; default the served size"
    ),
    depth: int = Query(1, ge=1, le=3, description="1 = top-level layers, 2 = blocks, 3 = all"),
) -> SummaryResponse:
    """Per-layer output shapes and parameter counts for a (1, C, S, S) input, as d2l prints."""
    size = input_size if input_size is not None else engine.ckpt.input_size
    if not MIN_INPUT <= size <= MAX_INPUT:
        raise ApiError(422, f"input_size must be between {MIN_INPUT} and {MAX_INPUT}, got {size}")
    ckpt = engine.ckpt
    return await run_in_threadpool(_summary, ckpt.num_classes, ckpt.in_channels, size, depth)
