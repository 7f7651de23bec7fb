"""A checkpoint's metadata and files, without torch: what serving on ONNX Runtime needs.

model.network.checkpoint adds the network itself (torch); this module is what a torch-free CPU image
imports to check a checkpoint and find its exported graphs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARCHITECTURE = "d2l-resnet18"
FORMAT_VERSION = 1
# The trained checkpoint that ships with the package and that the service loads by default.
SHIPPED_CHECKPOINT = (
    Path(__file__).resolve().parents[1] / "weights" / "fashion-resnet18.safetensors"
)
POLARITY = "light-on-dark"
# What a network sees of an upload: the 28x28 Fashion-MNIST-like silhouette, or the photo itself.
SILHOUETTE, PHOTO = "silhouette", "photo"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or not for this network."""


def _in_channels(meta: dict[str, Any]) -> int:
    # Files written before the field existed were all single-channel.
    return int(meta.get("in_channels", 1))


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint's metadata, checked, and where its weights are."""

    meta: dict[str, Any]
    path: Path | None = None  # the .safetensors file

    @property
    def input_size(self) -> int:
        """Height and width the network was trained at."""
        return int(self.meta["input_size"])

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def in_channels(self) -> int:
        """Image channels the network takes (1 for Fashion-MNIST)."""
        return _in_channels(self.meta)

    @property
    def mean(self) -> float:
        """Normalisation mean of pixel values in [0, 1]."""
        return float(self.meta["normalization"]["mean"])

    @property
    def std(self) -> float:
        """Normalisation standard deviation of pixel values in [0, 1]."""
        return float(self.meta["normalization"]["std"])

    @property
    def input_spec(self) -> InputSpec:
        """What the network expects, as the runtimes and preprocessing take it."""
        return InputSpec(self.input_size, self.mean, self.std)

    @property
    def view(self) -> str:
        """What the network sees: SILHOUETTE (files from before the field) or PHOTO."""
        return str(self.meta.get("view", SILHOUETTE))

    @property
    def framing(self) -> str:
        """What a photo view frames: "whole" (the photo) or "garment" (the framing's box)."""
        return str(self.meta.get("framing", "whole"))

    @property
    def architecture(self) -> str:
        return str(self.meta["architecture"])

    @property
    def temperature(self) -> float:
        """Probabilities are softmax(logits / temperature): 1 until model.calibrate fits it."""
        return float(self.meta.get("calibration", {}).get("temperature", 1.0))

    @property
    def flag_threshold(self) -> float | None:
        """Garment score below which a photo is probably none of the classes (None: not
        fitted). The score is the garment head's probability where the calibration fitted one,
        else the top class's probability."""
        value = self.meta.get("calibration", {}).get("flag_threshold")
        return None if value is None else float(value)

    @property
    def garment_head(self) -> dict[str, Any] | None:
        """The garment head model.calibrate fitted: {"weight": [features], "bias": b}; the
        probability that an image shows one of the classes is sigmoid(weight . features + b),
        features the network's pooled penultimate layer. None: the flag reads the top class's
        probability instead."""
        head = self.meta.get("calibration", {}).get("garment_head")
        return None if head is None else dict(head)

    @property
    def short_hash(self) -> str:
        return str(self.meta["weights_sha256"])[:12]

    @property
    def graph_key(self) -> str:
        """What an exported graph of this checkpoint depends on, hashed: the weights, the
        input transform, the calibration and the INT8 record (ranges, guard). A graph whose key
        differs is stale."""
        spec = {
            "weights_sha256": self.meta["weights_sha256"],
            "input": [self.input_size, self.mean, self.std],
            "temperature": self.temperature,
            "garment_head": self.garment_head,
            "int8": self.meta.get("int8"),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class InputSpec:
    """What a network expects: square input of `size` pixels, normalised with mean and std."""

    size: int
    mean: float
    std: float


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths for a checkpoint named by either file or by its stem."""
    p = Path(path)
    # A stem's own dots stay: "runs/v1.2" names runs/v1.2.safetensors, not runs/v1.safetensors.
    stem = str(p.with_suffix("")) if p.suffix in (".safetensors", ".json") else str(p)
    return Path(stem + ".safetensors"), Path(stem + ".json")


def graph_file(path: str | Path, precision: str = "fp32") -> Path:
    """Where the exported ONNX graph of a checkpoint lies: beside it, named by precision."""
    weights, _ = checkpoint_files(path)
    return weights.with_suffix(".onnx" if precision == "fp32" else f".{precision}.onnx")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def update_metadata(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Set top-level fields of a checkpoint's metadata (the weights and their hash stay)."""
    _, meta_path = checkpoint_files(path)
    meta = read_metadata(path)
    meta.update(fields)
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(meta_path)
    return meta


def _why(exc: OSError) -> str:
    """An OSError in words, without repeating the path: 'Permission denied', say."""
    return exc.strerror or str(exc)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint's JSON metadata without touching the weights."""
    if Path(path).is_dir():
        raise CheckpointError(
            f"{path} is a folder: give the checkpoint's .safetensors file (its .json beside it)"
        )
    weights_path, meta_path = checkpoint_files(path)
    for p in (weights_path, meta_path):
        if not p.is_file():
            given = "" if Path(path) == p else f" (for {path})"
            raise CheckpointError(f"checkpoint file not found: {p}{given}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint metadata {meta_path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint metadata {meta_path} cannot be read: {_why(exc)}"
        ) from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint metadata {meta_path} is not a JSON object")
    if meta.get("architecture") != ARCHITECTURE:
        raise CheckpointError(
            f"checkpoint {meta_path} is for architecture {meta.get('architecture')!r}, "
            f"this service runs {ARCHITECTURE!r}"
        )
    required = ("num_classes", "class_names", "input_size", "normalization", "weights_sha256")
    missing = [k for k in required if k not in meta]
    if missing:
        raise CheckpointError(f"checkpoint metadata {meta_path} lacks {', '.join(missing)}")
    if len(meta["class_names"]) != meta["num_classes"]:
        raise CheckpointError(
            f"checkpoint metadata {meta_path}: class_names and num_classes differ"
        )
    return meta


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """A checkpoint's checked metadata, its weights file checked against the recorded hash."""
    weights_path, _ = checkpoint_files(path)
    meta = read_metadata(path)
    try:
        actual = sha256_file(weights_path)
    except OSError as exc:
        raise CheckpointError(
            f"checkpoint weights {weights_path} cannot be read: {_why(exc)}"
        ) from exc
    if actual != meta["weights_sha256"]:
        raise CheckpointError(
            f"checkpoint weights {weights_path} do not match their recorded sha256 "
            f"(expected {meta['weights_sha256'][:12]}…, found {actual[:12]}…): the file was changed"
        )
    return CheckpointInfo(meta=meta, path=weights_path)
