"""App factory and lifespan: `uvicorn app.main:create_app --factory`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from app import openapi
from app.config import EngineOptions, Settings, resolve_engine_options
from app.decode import Decoder
from app.engine import Admission, InferenceEngine, describe_device, nvidia_device_present
from app.errors import install_error_handlers
from app.metrics import Metrics, RequestMetricsMiddleware
from app.routes import health, model, predict, v2
from app.runtime import cpu_flags, installed
from app.security import protect_docs
from model.meta import CheckpointError, CheckpointInfo, read_checkpoint_info

log = logging.getLogger("app")
# The features that decide how fast the model runs here, named in the start-up log.
CPU_FLAGS_LOGGED = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8")

DESCRIPTION = """
Classifies clothing photos into the ten Fashion-MNIST classes with the ResNet-18 of
*Dive into Deep Learning*. Upload any photo to **POST /predict** (multipart field `image`):
it is turned into a Fashion-MNIST-like image (orientation, transparency, grayscale, polarity,
crop, padding) before the network sees it. Concurrent requests share forward passes.
"""


def build_engine(
    settings: Settings,
    ckpt: CheckpointInfo,
    device: str,
    metrics: Metrics | None = None,
    options: EngineOptions | None = None,
) -> InferenceEngine:
    """The inference engine the settings describe (their defaults resolved unless given), not
    yet started."""
    options = options or resolve_engine_options(settings, device, ckpt.input_size)
    return InferenceEngine(
        ckpt,
        device,
        max_batch_size=options.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1000,
        queue_size=settings.queue_size,
        metrics=metrics,
        options=options.model,
    )


def serving_device(name: str) -> str:
    """'cpu' or 'cuda:N' for a MODEL_DEVICE setting; without torch only the CPU serves.

    torch is imported only where a GPU could be used: on a CPU-only host the service then runs
    without it even where it is installed (RSS 620 -> about 150 MB, a faster start)."""
    if name == "cpu" or (name == "auto" and not nvidia_device_present()):
        return "cpu"
    if not installed("torch"):
        raise RuntimeError(f"MODEL_DEVICE={name} needs torch, which is not installed")
    import torch

    from model.device import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; an unusable checkpoint or device ends the process with one clear line."""
    settings = settings or Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        # Validated here, before the server binds, so a bad checkpoint never serves anything.
        ckpt = read_checkpoint_info(settings.model_checkpoint)
        device = serving_device(settings.model_device)
    except (CheckpointError, RuntimeError) as exc:
        raise SystemExit(f"fashion-resnet: cannot start: {exc}") from None
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        options = resolve_engine_options(settings, device, ckpt.input_size)
        decoder = Decoder(
            options.decode_threads,
            settings.max_image_pixels,
            settings.decode_memory_mb << 20,
            options.decode_processes,
        )
        await decoder.warm_up()
        engine = build_engine(settings, ckpt, device, metrics, options)
        await engine.start()
        # Everything loaded so far (torch, the model, FastAPI) lives as long as the process:
        # moved out of the collector's sight, a full collection no longer stalls requests.
        gc.collect()
        gc.freeze()
        app.state.admission = Admission(settings.queue_size, metrics)
        app.state.decoder, app.state.engine = decoder, engine
        log.info(
            "serving %s checkpoint %s (%dx%d input) on %s with %s, batches up to %d",
            ckpt.architecture,
            ckpt.short_hash,
            ckpt.input_size,
            ckpt.input_size,
            describe_device(device),
            engine.runner.name,
            engine.max_batch_size,
        )
        cpu = sorted(cpu_flags().intersection(CPU_FLAGS_LOGGED)) or ["none of note"]
        log.info(
            "precision %s (%s); %s inference thread(s) (%s); CPU flags: %s",
            engine.runner.precision,
            engine.runner.why,
            options.model.threads or "default",
            options.threads_why,
            " ".join(cpu),
        )
        try:
            yield
        finally:
            app.state.engine = None
            await engine.stop()
            await decoder.close()

    # Swagger UI and ReDoc from files inside the package: deployments often have no CDN access.
    app = FastAPIOffline(
        title="fashion-resnet",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ckpt = ckpt
    app.state.metrics = metrics
    app.state.engine = None
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # Routes are matched in order, each match costing microseconds: the prediction routes first.
    for module in (predict, v2, model, health):
        app.include_router(module.router)
    openapi.install(
        app,
        settings,
        v2.OPENAPI_MODELS,
        {"model_name": v2.served_name(settings, ckpt), "model_version": ckpt.short_hash},
    )
    protect_docs(app)
    return app
