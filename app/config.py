"""Service settings, read from environment variables (and an optional .env file)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.serving.runner import Backend, ModelOptions, Precision
from model.images.decode import DEFAULT_MAX_PIXELS
from model.images.silhouette import NATIVE_SIZE
from model.network.checkpoint_info import SHIPPED_CHECKPOINT

ModelControl = Literal["none", "explicit", "poll"]
# A model's name (a folder of the model repository, a path segment under /v2/models/): no '/',
# no leading '.', so no name can reach outside the repository. A version is a positive integer.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
VERSION_PATTERN = r"^[1-9][0-9]{0,8}$"


class Settings(BaseSettings):
    """Every knob of the service; each field is the upper-case env var of the same name."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_ignore_empty=True,  # VAR= in a compose file or .env means "use the default"
        extra="ignore",
        frozen=True,
        protected_namespaces=(),
    )

    model_checkpoint: Path = Field(
        SHIPPED_CHECKPOINT, description="checkpoint .safetensors (or .json)"
    )
    model_name: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description="MODEL_CHECKPOINT's name in answers and under /v2/models/; default the "
        "checkpoint's architecture",
    )
    model_repository: Path | None = Field(
        None,
        description="a folder of <name>/<version>/model.safetensors (docs/models.md); unset: "
        "MODEL_CHECKPOINT alone, as version 1",
    )
    default_model: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description="the model /predict answers with when no ?model= is given; needed when "
        "MODEL_REPOSITORY holds more than one",
    )
    model_control: ModelControl = Field(
        "none",
        description="none: the models there at start-up, no load/unload calls; explicit: "
        "loaded and unloaded by call; poll: the folder is watched every POLL_S",
    )
    poll_s: float = Field(5.0, gt=0, le=3600, description="MODEL_CONTROL=poll's period, seconds")
    model_device: str = Field("auto", description="auto (CUDA when available), cpu, cuda, cuda:N")
    max_batch_size: int | None = Field(
        None, ge=1, le=1024, description="images per forward pass; default 32 on CPU, 128 on CUDA"
    )
    max_wait_ms: float = Field(
        0.0, ge=0, le=1000, description="how long a quiet queue waits for a batch to fill"
    )
    queue_size: int = Field(
        512, ge=1, description="images being decoded or waiting for inference before 503"
    )
    request_timeout_s: float = Field(
        10.0, gt=0, description="seconds from a request's last body byte to its answer (504 after)"
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="seconds a connection has to send a complete request header"
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="seconds a request has to send its whole body (408 after)"
    )
    max_connections: int = Field(
        2048, ge=1, description="open connections before new ones get 503 (capped by the fd limit)"
    )
    drain_s: float = Field(
        0.0,
        ge=0,
        le=60,
        description="on SIGTERM, seconds of answering /health/ready with 503 while still serving "
        "and accepting, before the shutdown starts: time for a load balancer's health check "
        "to move traffic away (with WORKERS=1; Kubernetes' preStop does the same)",
    )
    shutdown_timeout_s: float = Field(
        25.0,
        gt=0,
        description="on SIGTERM, seconds in-flight requests have to finish before they are cut; "
        "keep it above BODY_TIMEOUT_S + REQUEST_TIMEOUT_S, so that none is",
    )
    max_upload_mb: float = Field(10.0, gt=0, description="upload size limit in MB (413 above)")
    max_image_pixels: int = Field(
        DEFAULT_MAX_PIXELS, ge=1, description="declared width x height limit (413 above)"
    )
    decode_memory_mb: int = Field(
        256,
        ge=16,
        description="decoded pixels held at once by all decodes, in MB (a 40 MP photo is 160 MB)",
    )
    max_batch_images: int = Field(64, ge=1, description="images per /predict/batch request")
    default_top_k: int = Field(3, ge=1, le=10)
    model_backend: Backend = Field(
        "auto", description="auto: onnxruntime on CPU when installed, torch otherwise"
    )
    inference_threads: int | None = Field(
        None,
        ge=1,
        validation_alias=AliasChoices("inference_threads", "torch_threads"),
        description="intra-op threads for CPU inference; default all cores but one at 28x28 "
        "input, all cores above (TORCH_THREADS also works)",
    )
    decode_threads: int | None = Field(
        None, ge=1, description="threads decoding uploaded photos; default one per core"
    )
    decode_processes: int | None = Field(
        None,
        ge=0,
        le=64,
        description="processes that prepare small photos while other requests are in flight; "
        "default 1 on two or more cores, 0 (all in the service's process) on one",
    )
    model_precision: Precision = Field("auto", description="auto: fp16 on CUDA, fp32 on CPU")
    fold_batch_norm: bool = Field(True, description="fold BatchNorm into the convs at start-up")
    channels_last: bool = Field(True, description="NHWC memory layout for the convs")
    torch_compile: bool = Field(False, description="torch.compile the model at start-up")
    log_level: str = Field("info")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated origins"
    )
    api_key: SecretStr | None = Field(None, description="when set, /predict* need it")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def cpu_cores() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    return len(os.sched_getaffinity(0))


def default_inference_threads(input_size: int) -> int:
    """CPU threads for the model: all cores but one at 28x28, all cores for larger inputs.

    At 28x28 a forward pass costs about what the HTTP work around it does, so one core is left
    to the event loop and decoding (measured: more throughput, larger batches). At 96x96 the
    model is 10x the work and a second thread is worth more than the loop's spare core.
    """
    cores = cpu_cores()
    return cores if input_size > NATIVE_SIZE else max(1, cores - 1)


@dataclass(frozen=True)
class EngineOptions:
    """The engine's settings with every "auto" worked out for one device and input size."""

    max_batch_size: int
    decode_threads: int
    decode_processes: int
    model: ModelOptions
    threads_why: str = ""  # how the inference thread count was chosen, for the start-up log


def resolve_engine_options(settings: Settings, device: str, input_size: int) -> EngineOptions:
    """Where each default that depends on the machine or the checkpoint is chosen."""
    on_cuda = device.startswith("cuda")
    return EngineOptions(
        # A GPU's forward pass costs little more at 128 than at 32; a CPU's grows with the batch.
        max_batch_size=settings.max_batch_size or (128 if on_cuda else 32),
        # As many decoders as cores: more only hold more photos in memory at once (each thread
        # also grows its own malloc arena) without decoding any faster.
        decode_threads=settings.decode_threads or cpu_cores(),
        # One process takes the photo analysis off the loop; on one core it would only compete.
        decode_processes=(
            settings.decode_processes
            if settings.decode_processes is not None
            else int(cpu_cores() >= 2)
        ),
        model=ModelOptions(
            backend=settings.model_backend,
            threads=settings.inference_threads or default_inference_threads(input_size),
            fold_batch_norm=settings.fold_batch_norm,
            channels_last=settings.channels_last,
            precision=settings.model_precision,
            compile=settings.torch_compile,
        ),
        threads_why=(
            "INFERENCE_THREADS"
            if settings.inference_threads
            else f"{cpu_cores()} cores, {'all' if input_size > NATIVE_SIZE else 'all but one'} "
            f"at {input_size}x{input_size} input"
        ),
    )


def settings_problem(exc: ValidationError) -> str:
    """A settings error in one line: 'MAX_UPLOAD_MB: Input should be greater than 0', say."""
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']).upper() or 'settings'}: {e['msg']}"
        for e in exc.errors()
    )
