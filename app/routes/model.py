"""GET /model and /model/summary: what is being served, layer by layer."""

from __future__ import annotations

import functools
import threading
from typing import Any

import torch
from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from torch import nn

from app.deps import EngineDep, SettingsDep, require_api_key
from app.schemas import ErrorResponse, LayerInfo, ModelInfo, SummaryResponse
from model.net import ARCHITECTURE, resnet18
from model.summary import layer_summary

router = APIRouter(prefix="/model", tags=["model"], dependencies=[Depends(require_api_key)])

MIN_INPUT, MAX_INPUT = 16, 512
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "API key missing or wrong (when API_KEY is set)"},
    422: {"model": ErrorResponse, "description": "bad parameter"},
    503: {"model": ErrorResponse, "description": "model not loaded yet"},
}


@functools.cache
def _shape_network(num_classes: int, in_channels: int) -> nn.Module:
    # Shapes and counts do not depend on the weights, and the served model's hooks must never see
    # a summary pass interleaved with real requests: a copy of its shape on the meta device,
    # where a forward pass computes shapes only (a 512x512 summary: 120 ms of CPU and ~300 MB on
    # the CPU device, 15 ms and no memory here).
    with torch.device("meta"):
        return resnet18(num_classes=num_classes, in_channels=in_channels)


_summary_lock = threading.Lock()  # one summary at a time: hooks go on the one shared network


# Every (input size, depth) pair fits: a flood of distinct sizes is answered from memory.
@functools.lru_cache(maxsize=(MAX_INPUT - MIN_INPUT + 1) * 3)
def _summary(num_classes: int, in_channels: int, input_size: int, depth: int) -> SummaryResponse:
    net = _shape_network(num_classes, in_channels)
    with _summary_lock:
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


@router.get("", response_model=ModelInfo, responses=ERRORS)
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
        checkpoint_file=settings.model_checkpoint.name,  # the name only: paths stay private
        metadata=ckpt.meta,
    )


@router.get(
    "/summary",
    response_model=SummaryResponse,
    responses=ERRORS,
)
async def model_summary(
    engine: EngineDep,
    input_size: int | None = Query(
        None,
        ge=MIN_INPUT,
        le=MAX_INPUT,
        description=f"height and width, {MIN_INPUT}-{MAX_INPUT}; default the served size",
    ),
    depth: int = Query(1, ge=1, le=3, description="1 = top-level layers, 2 = blocks, 3 = all"),
) -> SummaryResponse:
    """Per-layer output shapes and parameter counts for a (1, C, S, S) input, as d2l prints."""
    size = input_size if input_size is not None else engine.ckpt.input_size
    ckpt = engine.ckpt
    return await run_in_threadpool(_summary, ckpt.num_classes, ckpt.in_channels, size, depth)
