"""Liveness, readiness and Prometheus metrics; never behind the API key."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.deps import EngineDep
from app.schemas import ErrorResponse, Live, Ready

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=Live)
async def live() -> Live:
    """The process answers."""
    return Live(status="alive")


@router.get("/health/ready", response_model=Ready, responses={503: {"model": ErrorResponse}})
async def ready(engine: EngineDep) -> Ready:
    """200 once the model is loaded and warmed up, 503 before."""
    return Ready(status="ready", device=str(engine.device), checkpoint=engine.ckpt.short_hash)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus text format: requests, per-stage latency, batch sizes, queue depth."""
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
