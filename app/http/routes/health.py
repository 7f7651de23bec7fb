"""Liveness, readiness and Prometheus metrics; never behind the API key."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.errors import ApiError
from app.http.deps import ServicesDep
from app.protocol.schemas import ErrorResponse, Live, Ready

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=Live)
async def live() -> Live:
    """The process answers."""
    return Live(status="alive")


@router.get("/health/ready", response_model=Ready, responses={503: {"model": ErrorResponse}})
async def ready(services: ServicesDep) -> Ready:
    """200 once the model is loaded and warmed up, 503 before, and 503 again from SIGTERM on
    (with DRAIN_S, while the service still answers, so that a load balancer moves away)."""
    if services.draining:
        raise ApiError(503, "the service is shutting down", {"Retry-After": "1"})
    engine = services.engine
    return Ready(status="ready", device=str(engine.device), checkpoint=engine.ckpt.short_hash)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text format: requests, per-stage latency, batch sizes, queue depth."""
    body = generate_latest(services.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
