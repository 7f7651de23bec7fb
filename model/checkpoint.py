"""The checkpoint format: weights in safetensors, metadata in a JSON file beside them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from model.net import ARCHITECTURE, resnet18
from model.preprocess import InputSpec

FORMAT_VERSION = 1
# The trained checkpoint that ships with the package and that the service loads by default.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "fashion-resnet18.safetensors"
POLARITY = "light-on-dark"
# The first convolution's weight, (64, in_channels, 7, 7): where a state dict says its channels.
FIRST_CONV_WEIGHT = "0.0.weight"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or not for this network."""


def _in_channels(meta: dict[str, Any]) -> int:
    # Files written before the field existed were all single-channel.
    return int(meta.get("in_channels", 1))


@dataclass(frozen=True)
class Checkpoint:
    """A loaded network in eval mode and its metadata."""

    model: nn.Module
    meta: dict[str, Any]

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
    def architecture(self) -> str:
        return str(self.meta["architecture"])

    @property
    def temperature(self) -> float:
        """Probabilities are softmax(logits / temperature): 1 until model.calibrate fits it."""
        return float(self.meta.get("calibration", {}).get("temperature", 1.0))

    @property
    def flag_threshold(self) -> float | None:
        """Confidence below which a photo is probably none of the classes (None: not fitted)."""
        value = self.meta.get("calibration", {}).get("flag_threshold")
        return None if value is None else float(value)

    @property
    def short_hash(self) -> str:
        return str(self.meta["weights_sha256"])[:12]


def checkpoint_files(path: str | Path) -> tuple[Path, Path]:
    """(weights, metadata) paths for a checkpoint named by either file or by its stem."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> str | None:
    """The current git commit, if this runs inside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    class_names: list[str] | tuple[str, ...],
    input_size: int,
    mean: float,
    std: float,
    recipe: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    weights_dtype: torch.dtype = torch.float32,
) -> Path:
    """Write <path>.safetensors and <path>.json; returns the weights path."""
    weights_path, meta_path = checkpoint_files(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)  # unwrap DDP
    state = {
        k: (v.to(weights_dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in module.state_dict().items()
    }
    in_channels = int(state[FIRST_CONV_WEIGHT].shape[1])
    save_file(state, str(weights_path), metadata={"architecture": ARCHITECTURE})
    meta = {
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "in_channels": in_channels,
        "input_size": input_size,
        "normalization": {"mean": mean, "std": std},
        "polarity": POLARITY,
        "recipe": recipe or {},
        "metrics": metrics or {},
        "torch_version": torch.__version__,
        "git_commit": git_commit(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "weights_file": weights_path.name,
        "weights_dtype": str(weights_dtype).removeprefix("torch."),
        "weights_sha256": sha256_file(weights_path),
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return weights_path


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint's two files under a new name; returns the new weights path."""
    (src_weights, src_meta), (dst_weights, dst_meta) = checkpoint_files(src), checkpoint_files(dst)
    dst_weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_weights, dst_weights)
    meta = json.loads(src_meta.read_text())
    meta["weights_file"] = dst_weights.name
    dst_meta.write_text(json.dumps(meta, indent=2) + "\n")
    return dst_weights


def update_metadata(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Set top-level fields of a checkpoint's metadata (the weights and their hash stay)."""
    _, meta_path = checkpoint_files(path)
    meta = read_metadata(path)
    meta.update(fields)
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(meta_path)
    return meta


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Read and check a checkpoint's JSON metadata without touching the weights."""
    weights_path, meta_path = checkpoint_files(path)
    for p in (weights_path, meta_path):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file not found: {p}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint metadata {meta_path} is not valid JSON: {exc}") from exc
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


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load and validate a checkpoint (architecture, hash, tensor shapes) into a float32 model."""
    weights_path, _ = checkpoint_files(path)
    meta = read_metadata(path)
    actual = sha256_file(weights_path)
    if actual != meta["weights_sha256"]:
        raise CheckpointError(
            f"checkpoint weights {weights_path} do not match their recorded sha256 "
            f"(expected {meta['weights_sha256'][:12]}…, found {actual[:12]}…): the file was changed"
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint weights {weights_path} are unreadable: {exc}") from exc
    model = resnet18(num_classes=int(meta["num_classes"]), in_channels=_in_channels(meta))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {weights_path} does not fit {ARCHITECTURE}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise CheckpointError(f"checkpoint {weights_path} has wrong tensor shapes: {wrong[:5]}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    model.to(device).eval()
    return Checkpoint(model=model, meta=meta)
