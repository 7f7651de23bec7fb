"""App factory and lifespan: `uvicorn app.http.factory:create_app --factory`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from app.config import Settings, resolve_engine_options
from app.http import openapi
from app.http.api_key import ApiKeyMiddleware
from app.http.deps import Services
from app.http.docs_policy import protect_docs
from app.http.handlers import install_error_handlers
from app.http.headers import SecurityHeadersMiddleware
from app.http.request_metrics import RequestMetricsMiddleware
from app.http.routes import health, model, models, page, predict, v2
from app.metrics import Metrics
from app.serving.admission import Admission
from app.serving.decode import Decoder
from app.serving.engine import InferenceEngine, build_engine
from app.serving.hardware import describe_device, serving_device
from app.serving.pipeline import Pipeline
from app.serving.repository import Repository, default_model, sources
from app.serving.runner import cpu_flags
from model.network.checkpoint_info import (
    SILHOUETTE,
    CheckpointError,
    CheckpointInfo,
    checkpoint_files,
    read_checkpoint_info,
)

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
    await decoder.warm_up()
    repository = services.repository
    default, version, path = services.start_model
    await repository.adopt(default, version, path, engine)
    # Everything loaded so far (torch, the model, FastAPI) lives as long as the process: moved
    # out of the collector's sight, a full collection no longer stalls requests.
    gc.collect()
    gc.freeze()
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
    try:
        yield
    finally:
        services.running = None
        if watcher is not None:
            watcher.cancel()
        await repository.close()
        await decoder.close()


def servable(ckpt: CheckpointInfo) -> CheckpointInfo:
    """ckpt, or CheckpointError when this service cannot feed it what it declares: the
    pipeline makes the 28x28 silhouette (resized to any input size), not a photo view."""
    if ckpt.view != SILHOUETTE:
        raise CheckpointError(
            f"{ckpt.path}: a {ckpt.view}-view checkpoint; the service feeds silhouettes only"
        )
    return ckpt


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; an unusable checkpoint or device ends the process with one clear line."""
    settings = settings or Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("uvicorn.access").addFilter(QuietHealthChecks())
    metrics = Metrics()
    try:
        # Loaded here, before the server binds, so a bad checkpoint, graph or device ends the
        # process with one line (the lifespan's errors would come with a traceback).
        root = settings.model_repository
        if root is None:
            ckpt = read_checkpoint_info(settings.model_checkpoint)
            weights = checkpoint_files(settings.model_checkpoint)[0]
            start_model = (settings.model_name or ckpt.architecture, 1, weights)
        else:
            start_model = default_model(root, settings.default_model)
            ckpt = read_checkpoint_info(start_model[2])
        servable(ckpt)
        device = serving_device(settings.model_device)
        options = resolve_engine_options(settings, device, ckpt.input_size)
        engine = build_engine(settings, ckpt, device, metrics=metrics, options=options)
    except (CheckpointError, RuntimeError, OSError, ValueError) as exc:
        raise SystemExit(f"fashion-resnet: cannot start: {exc}") from None
    # Swagger UI and ReDoc from files inside the package: deployments often have no CDN access.
    app = FastAPIOffline(title="fashion-resnet", version="0.1.0", description=DESCRIPTION,
                         lifespan=lifespan)  # fmt: skip

    def build(path: Path) -> InferenceEngine:
        """A version's engine: its own checkpoint's input and options, the shared metrics."""
        info = servable(read_checkpoint_info(path))
        resolved = resolve_engine_options(settings, device, info.input_size)
        return build_engine(settings, info, device, metrics=metrics, options=resolved)

    name = start_model[0]
    repository = Repository(sources(root, name, start_model[2]), build, name)
    app.state.services = Services(
        settings, ckpt, device, metrics, options, engine, repository, start_model
    )
    install_error_handlers(app)
    app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key)
    app.add_middleware(SecurityHeadersMiddleware)  # outside the key check: its 401s get them
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["*"], allow_headers=["*"])  # fmt: skip
    # Routes are matched in order, each match costing microseconds: the prediction routes first.
    for module in (predict, v2, model, models, health, page):
        app.include_router(module.router)
    app.mount(page.ASSETS, page.assets(), name="page")
    # One model, one version: the document offers them as the path's only values.
    path_values = {"model_name": name, "model_version": "1"} if root is None else {}
    openapi.install(app, settings, v2.OPENAPI_MODELS, path_values)
    protect_docs(app)
    return app
