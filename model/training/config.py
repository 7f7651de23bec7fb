"""A training run's configuration: every field a CLI flag (its help text the flag's), the named
recipes, and what makes a configuration wrong."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from model.data.photos import (
    DEFAULT_PHOTO_FOLDERS,
)
from model.images.photo_view import FRAMINGS
from model.network.shapes import MIN_INPUT

# Recipes a flag names: `--recipe photo` is the photo view's, each of its values a flag's default.
RECIPES: dict[str, dict[str, Any]] = {
    "d2l": {},
    "photo": {
        "view": "photo",
        "resize": 96,
        "epochs": 20,
        "batch_size": 128,
        "photo_share": 0.5,
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "onecycle",
        "label_smoothing": 0.1,
        "test_subset": 2000,
        "photos": DEFAULT_PHOTO_FOLDERS,
        "teacher": "runs/teacher",
        "out": "runs/photo",
    },
}


SCHEDULES = ("constant", "cosine", "onecycle")


AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


WEIGHTS_DTYPES = ("float32", "float16", "bfloat16")


VIEWS = ("silhouette", "photo")


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A config field whose help text (and any argparse options) make its CLI flag."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Fields marked runtime may change when a run is resumed."""

    epochs: int = _opt(10, "passes over the training set")
    lr: float = _opt(0.05, "peak learning rate")
    batch_size: int = _opt(256, "examples per step, per process")
    resize: int = _opt(96, "input size (28 = native)")
    momentum: float = _opt(0.0, "SGD momentum")
    nesterov: bool = _opt(False, "Nesterov momentum (with --momentum > 0)")
    weight_decay: float = _opt(0.0, "L2 weight decay")
    schedule: str = _opt("constant", "learning-rate schedule", choices=SCHEDULES)
    label_smoothing: float = _opt(0.0, "label smoothing of the cross-entropy")
    crop_padding: int = _opt(0, "random crop after padding, 0 = off")
    flip: bool = _opt(False, "random horizontal flip")
    seed: int = _opt(0, "seed of weights, order and augmentation")
    amp: str = _opt("none", "mixed precision (CUDA)", choices=tuple(AMP_DTYPES))
    channels_last: bool = _opt(False, "NHWC memory layout")
    train_subset: int | None = _opt(None, "first N train images")
    test_subset: int | None = _opt(None, "first N test images")
    eval_batch_size: int = _opt(1024, "images per evaluation batch")
    weights_dtype: str = _opt("float32", "dtype of the saved weights", choices=WEIGHTS_DTYPES)
    init_from: str | None = _opt(None, "fine-tune: start from this checkpoint, not Xavier init")
    # Real photos as a second source (off by default: d2l's recipe is Fashion-MNIST alone).
    photos: str | None = _opt(
        None, "folders of labelled real photos (labels.csv), comma-separated, to train on too"
    )
    photo_share: float = _opt(0.25, "share of each batch drawn from the photos (with --photos)")
    photo_aug: float = _opt(1.0, "strength of the photo-like augmentation (0 = off)")
    balance_photos: bool = _opt(False, "draw photos so that every garment type is equally likely")
    ema_decay: float = _opt(
        0.0, "evaluate and save a moving average of the weights, this decay a step (0 = off)"
    )
    fm_photo_like: float = _opt(0.0, "share of Fashion-MNIST images given photo-like augmentation")
    fm_holdout: int = _opt(0, "last N Fashion-MNIST train images kept out of training")
    outlier_exposure: float = _opt(
        0.0, "weight of the uniform-answer loss on photos of none of the ten classes (0 = unused)"
    )
    pipeline_copies: int = _opt(
        0, "N Fashion-MNIST train images rendered as photos and preprocessed as served, with photos"
    )
    non_garments: int = _opt(0, "N synthetic non-garments, with photos, trained as none of the ten")
    pipeline_share: float = _opt(0.3, "share of the photo draws given to the pipeline copies")
    pipeline_weights: str = _opt(
        "", "renderings drawn more often for the pipeline copies: NAME=W,... (the rest 1)"
    )
    non_garment_share: float = _opt(0.1, "share of the photo draws given to the non-garments")
    garment_loss: float = _opt(
        0.0, "weight of a garment-or-not loss on the pooled features (a probe not kept; 0 = off)"
    )
    # The photo view: the network sees the photo itself, taught by a fine-tuned teacher.
    view: str = _opt("silhouette", "what the network sees: the 28x28 silhouette or the photo",
                     choices=VIEWS)  # fmt: skip
    photo_framing: str = _opt("whole", "photo view: what it frames, the whole photo or the garment",
                              choices=FRAMINGS)  # fmt: skip
    teacher: str | None = _opt(
        None, "photo view: the teacher's folder (fine-tuned there first when it is empty)"
    )
    distill_weight: float = _opt(0.7, "photo view: weight of the teacher's softened answers")
    distill_temperature: float = _opt(4.0, "photo view: temperature of the distillation")
    imagenet_footwear: bool = _opt(
        False, "photo view: the teacher's footwear answer split as its ImageNet head splits it"
    )
    # Runtime fields: where and how this process runs, not what it learns.
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N", runtime=True)
    threads: int | None = _opt(None, "CPU intra-op threads", runtime=True)
    data_dir: str | None = _opt(None, "folder with the idx files", runtime=True)
    out: str = _opt("runs/d2l", "output folder", runtime=True)
    resume: bool = _opt(False, "continue the run in --out", runtime=True)
    progress: bool = _opt(True, "no tqdm progress bar", runtime=True, flag="--no-progress")


RUNTIME_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("runtime"))


def with_saved_recipe(cfg: TrainConfig) -> TrainConfig:
    """On --resume, the recipe of the run in cfg.out with cfg's runtime fields; else cfg."""
    state_file = Path(cfg.out) / "state.json"
    if not (cfg.resume and state_file.exists()):
        return cfg
    saved = json.loads(state_file.read_text())["config"]
    return dataclasses.replace(TrainConfig(**saved), **{k: getattr(cfg, k) for k in RUNTIME_FIELDS})


def config_problem(cfg: TrainConfig) -> str | None:
    """What is wrong with a configuration's values, in one sentence; None when nothing is."""
    positive = ("epochs", "batch_size", "eval_batch_size", "lr")
    for name in positive:
        if getattr(cfg, name) <= 0:
            return f"--{name.replace('_', '-')} must be positive, got {getattr(cfg, name)}"
    if cfg.resize < MIN_INPUT:
        return f"--resize must be at least {MIN_INPUT} (halved five times), got {cfg.resize}"
    shares = ("photo_share", "fm_photo_like", "pipeline_share", "non_garment_share")
    for name in shares:
        if not 0 <= getattr(cfg, name) <= 1:
            return f"--{name.replace('_', '-')} is a share from 0 to 1, got {getattr(cfg, name)}"
    counts = ("fm_holdout", "pipeline_copies", "non_garments", "crop_padding")
    for name in counts:
        if getattr(cfg, name) < 0:
            return f"--{name.replace('_', '-')} cannot be negative, got {getattr(cfg, name)}"
    for name in ("train_subset", "test_subset", "threads"):
        if getattr(cfg, name) is not None and getattr(cfg, name) < 1:
            return f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}"
    if cfg.pipeline_weights:
        from model.data.renderings import parse_weights

        try:
            parse_weights(cfg.pipeline_weights)
        except ValueError as exc:
            return f"--pipeline-weights: {exc}"
    if cfg.init_from and not Path(cfg.init_from).exists():
        return f"--init-from {cfg.init_from}: no such checkpoint"
    return None
