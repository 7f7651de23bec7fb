"""The services a request uses, as one typed object reached through one dependency.

`Services` is built with the app (settings, checkpoint, metrics); the lifespan starts the pipeline
(decoder, admission, engine) inside it. Routes take it as `services: ServicesDep`; its `pipeline`
and `engine` answer 503 until the model is loaded and warmed up (the one readiness check).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.config import EngineOptions, Settings
from app.errors import ApiError
from app.metrics import Metrics
from app.serving.engine import InferenceEngine
from app.serving.pipeline import Pipeline
from model.network.checkpoint_info import CheckpointInfo

NOT_READY = "the model is not loaded and warmed up yet"


@dataclass
class Services:
    """Everything a route reaches: fixed at start (settings, checkpoint, device, metrics), and
    the running pipeline (503 before the lifespan has started it or after it stops)."""

    settings: Settings
    ckpt: CheckpointInfo
    device: str  # 'cpu' or 'cuda:N'
    metrics: Metrics
    options: EngineOptions  # the settings' defaults resolved for this device and checkpoint
    built: InferenceEngine  # the model loaded, not started: the lifespan warms it up
    running: Pipeline | None = None  # set by the lifespan once warmed up, None after stop
    draining: bool = False  # SIGTERM came: readiness says 503, requests are still served

    @property
    def ready(self) -> bool:
        """The model is loaded, warmed up and taking requests."""
        return self.running is not None and self.running.engine.ready

    @property
    def pipeline(self) -> Pipeline:
        """The running pipeline, or 503 while the model is not ready."""
        if self.running is None or not self.ready:
            raise ApiError(503, NOT_READY, {"Retry-After": "1"})
        return self.running

    @property
    def engine(self) -> InferenceEngine:
        """The running engine, or 503 while the model is not ready."""
        return self.pipeline.engine


async def get_services(request: Request) -> Services:
    """The app's services (async: a plain `def` dependency would hop to a thread per request)."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
