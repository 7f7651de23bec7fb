"""The default model loaded before the server binds, and the builder of every other version.

No FastAPI here: `python -m app.serve` runs `load` in a thread while the web stack imports, so
ONNX Runtime's first session (~0.2 s of C++, outside the GIL) overlaps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.config import EngineOptions, Settings, resolve_engine_options
from app.metrics import Metrics
from app.serving.engine import InferenceEngine, build_engine
from app.serving.hardware import serving_device
from app.serving.repository import default_model
from model.network.checkpoint_info import (
    SILHOUETTE,
    CheckpointError,
    CheckpointInfo,
    checkpoint_files,
    read_checkpoint_info,
)


def servable(ckpt: CheckpointInfo) -> CheckpointInfo:
    """ckpt, or CheckpointError when this service cannot feed it what it declares: the
    pipeline makes the 28x28 silhouette (resized to any input size), not a photo view."""
    if ckpt.view != SILHOUETTE:
        raise CheckpointError(
            f"{ckpt.path}: a {ckpt.view}-view checkpoint; the service feeds silhouettes only"
        )
    return ckpt


@dataclass(frozen=True)
class Start:
    """The default model as the service starts: which one, on what, and its engine (built,
    not warmed up: the lifespan does that)."""

    settings: Settings
    metrics: Metrics
    device: str  # 'cpu' or 'cuda:N'
    name: str
    version: int
    weights: Path
    ckpt: CheckpointInfo
    options: EngineOptions  # the settings' defaults resolved for this device and checkpoint
    engine: InferenceEngine

    def build(self, path: Path) -> InferenceEngine:
        """A version's engine: its own checkpoint's input and options, the shared metrics."""
        info = servable(read_checkpoint_info(path))
        resolved = resolve_engine_options(self.settings, self.device, info.input_size)
        return build_engine(
            self.settings, info, self.device, metrics=self.metrics, options=resolved
        )


def load(settings: Settings) -> Start:
    """The default model's engine; an unusable checkpoint, graph or device ends the process
    with one line (SystemExit), before the server binds."""
    try:
        root = settings.model_repository
        if root is None:
            ckpt = read_checkpoint_info(settings.model_checkpoint)
            weights = checkpoint_files(settings.model_checkpoint)[0]
            name, version = settings.model_name or ckpt.architecture, 1
        else:
            name, version, weights = default_model(root, settings.default_model)
            ckpt = read_checkpoint_info(weights)
        servable(ckpt)
        device = serving_device(settings.model_device)
        options = resolve_engine_options(settings, device, ckpt.input_size)
        metrics = Metrics()
        engine = build_engine(settings, ckpt, device, metrics=metrics, options=options)
    except (CheckpointError, RuntimeError, OSError, ValueError) as exc:
        raise SystemExit(f"fashion-resnet: cannot start: {exc}") from None
    return Start(settings, metrics, device, name, version, weights, ckpt, options, engine)
