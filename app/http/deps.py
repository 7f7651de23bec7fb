"""The services a request uses, as one typed object reached through one dependency.

`Services` is built with the app (settings, checkpoint, metrics, the model repository); the
lifespan starts the pipeline (decoder, admission, engines) inside it. Routes take it as
`services: ServicesDep`; `serving(model, version)` holds the version a request goes to, and it,
`pipeline` and `engine` answer 503 until the models are loaded and warmed up.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from app.config import EngineOptions, Settings
from app.errors import ApiError
from app.metrics import Metrics
from app.serving.engine import InferenceEngine
from app.serving.pipeline import Pipeline
from app.serving.repository import Repository, Version
from model.network.checkpoint_info import CheckpointInfo

NOT_READY = "the model is not loaded and warmed up yet"


@dataclass
class Services:
    """Everything a route reaches: fixed at start (settings, the default model's checkpoint,
    device, metrics, the repository), and the running pipeline (503 before the lifespan has
    started it or after it stops)."""

    settings: Settings
    ckpt: CheckpointInfo  # the default model's, as the service started
    device: str  # 'cpu' or 'cuda:N'
    metrics: Metrics
    options: EngineOptions  # the settings' defaults resolved for this device and checkpoint
    built: InferenceEngine  # the default model loaded, not started: the lifespan warms it up
    repository: Repository
    start_model: tuple[str, int, Path]  # the default model's name, version and weights at start
    running: Pipeline | None = None  # set by the lifespan once warmed up, None after stop
    draining: bool = False  # SIGTERM came: readiness says 503, requests are still served
    _pipelines: weakref.WeakKeyDictionary[Version, Pipeline] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    @property
    def ready(self) -> bool:
        """The default model is loaded, warmed up and taking requests."""
        if self.running is None:
            return False
        versions = self.repository.ready(self.repository.default)
        return any(v.engine is not None and v.engine.ready for v in versions.values())

    def _running(self) -> Pipeline:
        if self.running is None:
            raise ApiError(503, NOT_READY, {"Retry-After": "1"})
        return self.running

    def pipeline_of(self, entry: Version) -> Pipeline:
        """The pipeline through entry's engine (the shared decoder and admission before it)."""
        pipeline = self._pipelines.get(entry)
        if pipeline is None:
            pipeline = self._pipelines[entry] = replace(self._running(), engine=entry.engine)
        return pipeline

    @contextmanager
    def serving(self, model: str | None = None, version: str | None = None) -> Iterator[Pipeline]:
        """The pipeline of the version a request goes to (the default model's latest unless
        named), held until the request ends: an unload or a reload waits for it."""
        self._running()
        with self.repository.use(model, version) as entry:
            yield self.pipeline_of(entry)

    @property
    def pipeline(self) -> Pipeline:
        """The default model's pipeline now, or 503 while it is not ready."""
        self._running()
        if not self.ready:
            raise ApiError(503, NOT_READY, {"Retry-After": "1"})
        return self.pipeline_of(self.repository.resolve(None))

    def engine_of(self, model: str | None, version: str | None = None) -> InferenceEngine:
        """The engine of a model's version (the default model's latest unless named)."""
        if model is None and version is None:
            return self.engine
        self._running()
        engine = self.repository.resolve(model, version).engine
        assert engine is not None  # a ready version has one
        return engine

    @property
    def engine(self) -> InferenceEngine:
        """The default model's engine now, or 503 while it is not ready."""
        return self.pipeline.engine


async def get_services(request: Request) -> Services:
    """The app's services (async: a plain `def` dependency would hop to a thread per request)."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
