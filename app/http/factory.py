"""App factory and lifespan: `uvicorn app.http.factory:create_app --factory`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from app.config import Settings
from app.http import lane, openapi
from app.http.api_key import ApiKeyMiddleware
from app.http.deps import Services
from app.http.docs_policy import protect_docs
from app.http.handlers import install_error_handlers
from app.http.headers import SecurityHeadersMiddleware
from app.http.request_metrics import RequestMetricsMiddleware
from app.http.routes import health, model, models, page, predict, v2
from app.serving.admission import Admission
from app.serving.decode import Decoder
from app.serving.hardware import describe_device
from app.serving.pipeline import Pipeline
from app.serving.repository import Repository, sources
from app.serving.runner import cpu_flags
from app.serving.startup import Start, load

log = logging.getLogger("app")
# The features that decide how fast the model runs here, named in the start-up log.
CPU_FLAGS_LOGGED = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8")

DESCRIPTION = """
Classifies clothing photos into the ten Fashion-MNIST classes with the ResNet-18 of
*Dive into Deep Learning*. Upload any photo to **POST /predict** (multipart field `image`):
it is turned into a Fashion-MNIST-like image (orientation, transparency, grayscale, polarity,
crop, padding) before the network sees it. Concurrent requests share forward passes.
"""


class QuietHealthChecks(logging.Filter):
    """Drops access-log lines of health probes: an orchestrator's every-10-s check would
    otherwise be most of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        path = args[2] if isinstance(args, tuple) and len(args) >= 3 else ""
        return not (isinstance(path, str) and path.startswith(HEALTH_PATHS))


HEALTH_PATHS = ("/health/", "/v2/health/")


async def _watch(repository: Repository, period_s: float) -> None:
    """MODEL_CONTROL=poll: look at the repository folder every period_s, until cancelled."""
    while True:
        await asyncio.sleep(period_s)
        try:
            await repository.poll()
        except Exception:  # a watcher that died would leave the folder unwatched, silently
            log.exception("polling the model repository failed; polling goes on")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the pipeline (decoder, admission, engine warmed up), serve, then stop it."""
    services: Services = app.state.services
    settings, ckpt, device = services.settings, services.ckpt, services.device
    options, engine = services.options, services.built
    decoder = Decoder(
        options.decode_threads,
        settings.max_image_pixels,
        settings.decode_memory_mb << 20,
        options.decode_processes,
        services.metrics.decoder_restarts.inc,
    )
    repository = services.repository
    default, version, path = services.start_model
    # Both warm-ups wait on threads (Pillow, ONNX Runtime): side by side they overlap.
    await asyncio.gather(decoder.warm_up(), repository.adopt(default, version, path, engine))
    # Everything loaded so far (torch, the model, FastAPI) lives as long as the process: moved
    # out of the collector's sight, a full collection no longer stalls requests. No collection
    # first: it took 45 ms to find ~700 cyclic objects of the start-up, frozen with the rest.
    gc.freeze()
    gc.enable()  # `python -m app.serve` turns collections off while it loads
    admission = Admission(settings.queue_size, services.metrics)
    repository.on_change = admission.set_models
    admission.set_models(len([n for n in repository.names() if repository.ready(n)]))
    services.running = Pipeline(decoder, admission, engine, settings.max_batch_images)
    # The repository's other models: one that fails keeps its reason in the index.
    for name in repository.names():
        if name != default:
            await repository.load(name)
    watcher = None
    if settings.model_control == "poll":
        watcher = asyncio.create_task(_watch(repository, settings.poll_s), name="model-poll")
    log.info(
        "serving %s version %d (default model): %s checkpoint %s (%dx%d input) on %s with %s, "
        "batches up to %d",
        default,
        version,
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
    # Last: a process importing Pillow and numpy would take a core from the warm-ups above.
    await decoder.start_processes()
    try:
        yield
    finally:
        services.running = None
        if watcher is not None:
            watcher.cancel()
        await repository.close()
        await decoder.close()


def create_app(settings: Settings | None = None, start: Start | None = None) -> FastAPI:
    """Build the service around `start` (the default model, loaded now when not given); an
    unusable checkpoint or device ends the process with one clear line."""
    settings = settings or Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("uvicorn.access").addFilter(QuietHealthChecks())
    start = start or load(settings)
    # Swagger UI and ReDoc from files inside the package: deployments often have no CDN access.
    app = FastAPIOffline(title="fashion-resnet", version="0.1.0", description=DESCRIPTION,
                         lifespan=lifespan)  # fmt: skip
    root = settings.model_repository
    repository = Repository(sources(root, start.name, start.weights), start.build, start.name)
    app.state.services = Services(
        settings,
        start.ckpt,
        start.device,
        start.metrics,
        start.options,
        start.engine,
        repository,
        (start.name, start.version, start.weights),
    )
    install_error_handlers(app)
    app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    app.add_middleware(SecurityHeadersMiddleware)  # outside the key check: its 401s get them
    app.add_middleware(RequestMetricsMiddleware, metrics=start.metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["*"], allow_headers=["*"])  # fmt: skip
    # FastAPI readies a router's routes on its first request: health first, so the first readiness
    # probe pays for its three routes only (12 ms, not 65). Then the prediction routes.
    for module in (health, predict, v2, model, models, page):
        app.include_router(module.router)
    app.mount(page.ASSETS, page.assets(), name="page")
    lane.install(app, predict.router, "/predict", app.state.services)
    # One model, one version: the document offers them as the path's only values.
    path_values = {"model_name": start.name, "model_version": "1"} if root is None else {}
    openapi.install(app, settings, v2.OPENAPI_MODELS, path_values)
    protect_docs(app)
    return app
