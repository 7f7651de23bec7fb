"""The checkpoint format: weights in safetensors, metadata in a JSON file beside them.

The metadata side (reading, checking, the properties) is torch-free, in
model.network.checkpoint_info; this module adds the network.
"""

from __future__ import annotations

import datetime as dt
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

from model.network.checkpoint_info import (
    ARCHITECTURE,
    FORMAT_VERSION,
    POLARITY,
    SHIPPED_CHECKPOINT,
    SILHOUETTE,
    CheckpointError,
    CheckpointInfo,
    checkpoint_files,
    read_checkpoint_info,
    read_metadata,
    sha256_file,
    update_metadata,
)
from model.network.net import resnet18

__all__ = [
    "SHIPPED_CHECKPOINT",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_files",
    "copy_checkpoint",
    "load_checkpoint",
    "read_metadata",
    "save_checkpoint",
    "update_metadata",
]

READABLE = 0o644
# The first convolution's weight, (64, in_channels, 7, 7): where a state dict says its channels.
FIRST_CONV_WEIGHT = "0.0.weight"


@dataclass(frozen=True, kw_only=True)
class Checkpoint(CheckpointInfo):
    """A loaded network in eval mode and its metadata (keyword-only: `model` has no default)."""

    model: nn.Module


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
    view: str = SILHOUETTE,
    framing: str = "whole",
) -> Path:
    """Write <path>.safetensors and <path>.json; returns the weights path. The ONNX graphs the
    CPU image serves are the caller's to write (model.export.write_graphs)."""
    weights_path, meta_path = checkpoint_files(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)  # unwrap DDP
    state = {
        k: (v.to(weights_dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
        for k, v in module.state_dict().items()
    }
    in_channels = int(state[FIRST_CONV_WEIGHT].shape[1])
    save_file(state, str(weights_path), metadata={"architecture": ARCHITECTURE})
    # safetensors writes 0600; a checkpoint is meant to be read by others (a container's user).
    weights_path.chmod(READABLE)
    meta = {
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "in_channels": in_channels,
        "input_size": input_size,
        "normalization": {"mean": mean, "std": std},
        "view": view,
        **({"framing": framing} if view != SILHOUETTE else {}),
        "polarity": POLARITY if view == SILHOUETTE else "as photographed",
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
    meta_path.chmod(READABLE)
    return weights_path


def as_checkpoint(info: CheckpointInfo) -> Checkpoint:
    """The checkpoint with its network: `info` itself when it has one, else loaded."""
    if isinstance(info, Checkpoint):
        return info
    return load_checkpoint(info.path or SHIPPED_CHECKPOINT)


def copy_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy a checkpoint's two files under a new name; returns the new weights path."""
    (src_weights, src_meta), (dst_weights, dst_meta) = checkpoint_files(src), checkpoint_files(dst)
    dst_weights.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src_weights, dst_weights)
    dst_weights.chmod(READABLE)
    meta = json.loads(src_meta.read_text())
    meta["weights_file"] = dst_weights.name
    dst_meta.write_text(json.dumps(meta, indent=2) + "\n")
    return dst_weights


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load and validate a checkpoint (architecture, hash, tensor shapes) into a float32 model."""
    info = read_checkpoint_info(path)
    weights_path, meta = info.path, info.meta
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint weights {weights_path} are unreadable: {exc}") from exc
    model = resnet18(num_classes=info.num_classes, in_channels=info.in_channels)
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
    return Checkpoint(meta=meta, path=weights_path, model=model)
