"""Train the d2l ResNet-18 on Fashion-MNIST; `python -m model.train --help` lists the flags.

Read top to bottom: the configuration (each field's help text is its CLI flag's), the pieces a run
is built from (schedule, optimisation step, epoch, evaluation, checkpoint writing), then `train`,
which strings them together in one loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from model.checkpoint import load_checkpoint, save_checkpoint
from model.cli import DefaultsFormatter, Parser, run
from model.data import (
    CLASS_NAMES,
    DEFAULT_CACHE_DIR,
    MEAN,
    STD,
    Augment,
    BatchLoader,
    MixedBatchLoader,
    PhotoLike,
    Split,
    load_split,
)
from model.device import resolve_device
from model.export import write_graphs
from model.loss import GarmentLoss, SetCrossEntropy, in_set
from model.net import init_xavier, resnet18
from model.photos import (
    DEFAULT_PHOTO_FOLDERS,
    PhotoSet,
    concat_photos,
    load_photos,
    scored_accuracy,
    validation_split,
)
from model.preprocess import to_model_input
from model.shapes import MIN_INPUT
from model.training.distill import DistilledSetLoss, Targets
from model.training.photo_batches import VIEW_MEAN, VIEW_STD, PhotoViewBatches, normalise

SCHEDULES = ("constant", "cosine", "onecycle")
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
WEIGHTS_DTYPES = ("float32", "float16", "bfloat16")
VIEWS = ("silhouette", "photo")
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


def _opt(default: Any, help: str, **cli: Any) -> Any:
    """A config field whose help text (and any argparse options) make its CLI flag."""
    return field(default=default, metadata={"help": help, **cli})


# -----------------------------------------------------------------------------
# Configuration: the defaults are d2l's recipe (train_ch6 on resnet18)


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
    teacher: str | None = _opt(
        None, "photo view: the teacher's folder (fine-tuned there first when it is empty)"
    )
    distill_weight: float = _opt(0.7, "photo view: weight of the teacher's softened answers")
    distill_temperature: float = _opt(4.0, "photo view: temperature of the distillation")
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


# -----------------------------------------------------------------------------
# The pieces: schedule, optimisation step, epoch, evaluation


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Learning rate for an optimizer step; a pure function of the step so resuming is exact."""
    t = min(step / max(total_steps, 1), 1.0)
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * t))
    # One-cycle as torch's OneCycleLR defaults: 30% cosine warm-up from lr/25, then down to lr/25e4.
    start, end, warm = cfg.lr / 25.0, cfg.lr / 25e4, 0.3
    if t < warm:
        return cfg.lr + (start - cfg.lr) * (1 + math.cos(math.pi * t / warm)) / 2
    return end + (cfg.lr - end) * (1 + math.cos(math.pi * (t - warm) / (1 - warm))) / 2


@dataclass
class Stepper:
    """One optimisation step on a batch; what both training and the throughput benchmark call."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    scaler: torch.amp.GradScaler | None = None
    ema: AveragedModel | None = None  # the weights' moving average, updated after each step
    garment: GarmentLoss | None = None  # the garment-or-not loss on the pooled features

    @property
    def served(self) -> nn.Module:
        """The network to evaluate and save: the moving average when there is one."""
        return (
            self.ema.module if self.ema is not None else getattr(self.model, "module", self.model)
        )

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Train on (x, y); returns the summed loss and the count of correct predictions."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(device_type=x.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
            if self.garment is not None:
                loss = loss + self.garment(y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(getattr(self.model, "module", self.model))
        with torch.no_grad():
            return loss.detach() * len(y), hits(logits, y).sum()


def hits(logits: Tensor, targets: Tensor | Targets) -> Tensor:
    """(B,) bool: the top class is the target, or in the target set."""
    if isinstance(targets, Targets):
        return targets.hits(logits)
    top = logits.argmax(1)
    return in_set(top, targets) if targets.dtype == torch.bool else top == targets


def make_stepper(model: nn.Module, cfg: TrainConfig, device: torch.device) -> Stepper:
    """Optimizer, loss and precision settings of cfg around model."""
    garment = None
    params = list(model.parameters())
    if cfg.garment_loss:
        last = getattr(model, "module", model)[-1]
        garment = GarmentLoss(last.in_features, cfg.garment_loss).to(device)
        last.register_forward_pre_hook(garment.hook)
        params += list(garment.parameters())
    optimizer = torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )
    amp_dtype = AMP_DTYPES[cfg.amp]
    if amp_dtype is not None and device.type != "cuda":
        raise SystemExit("--amp bf16/fp16 needs a CUDA device")
    scaler = torch.amp.GradScaler("cuda") if amp_dtype is torch.float16 else None
    # torch's own EMA; buffers too, so BatchNorm's statistics belong to the averaged weights.
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        if cfg.ema_decay
        else None
    )
    return Stepper(
        model=model,
        optimizer=optimizer,
        loss_fn=(
            DistilledSetLoss(cfg.distill_weight, cfg.distill_temperature, cfg.label_smoothing)
            if cfg.view == "photo"
            else SetCrossEntropy(cfg.label_smoothing, cfg.outlier_exposure)
        ),
        amp_dtype=amp_dtype,
        channels_last=cfg.channels_last,
        scaler=scaler,
        ema=ema,
        garment=garment,
    )


def run_epoch(
    stepper: Stepper,
    batches: Iterable[tuple[Tensor, Tensor]],
    set_lr: Callable[[], None] = lambda: None,
    progress: tqdm | None = None,
) -> tuple[float, float, int, float]:
    """One pass over batches; returns (mean loss, accuracy, examples, seconds)."""
    stepper.model.train()
    loss_sum = torch.zeros(())
    correct = torch.zeros((), dtype=torch.int64)
    seen = 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        set_lr()
        batch_loss, batch_correct = stepper(x, y)
        if i == 0:
            loss_sum, correct = loss_sum.to(x.device), correct.to(x.device)
        loss_sum += batch_loss
        correct += batch_correct
        seen += len(y)
        # Syncing with the device each step would stall CUDA; refresh the bar every 10 steps.
        if progress is not None:
            progress.update(1)
            if i % 10 == 0:
                elapsed = time.perf_counter() - start
                progress.set_postfix(
                    loss=f"{loss_sum.item() / seen:.3f}",
                    acc=f"{correct.item() / seen:.3f}",
                    img_s=f"{seen / elapsed:.0f}",
                )
    if seen and loss_sum.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1), seen, seconds


@torch.no_grad()
def count_correct(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], channels_last: bool = False
) -> tuple[int, int]:
    """(correct, total) of model's argmax over batches, in eval mode."""
    model.eval()
    correct = total = 0
    for x, y in batches:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct, total


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Training curves like d2l's plot: train loss, train acc and test acc per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.plot(epochs, [h["train_acc"] for h in history], "--", label="train acc")
    ax.plot(epochs, [h["test_acc"] for h in history], "-.", label="test acc")
    ax.set_xlabel("epoch")
    ax.set_xlim(0.5, max(epochs) + 0.5)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def photos_per_batch(cfg: TrainConfig) -> int:
    """How many of each batch's examples are photos."""
    return round(cfg.batch_size * cfg.photo_share) if cfg.photos else 0


def train_batches(
    cfg: TrainConfig,
    data: Data,
    sampler: DistributedSampler[int],
    epoch: int,
    rank: int,
    device: torch.device,
) -> BatchLoader | MixedBatchLoader:
    """This rank's shuffled, augmented training batches of one epoch."""
    # Augmentation draws from a generator seeded per epoch and rank, so a resumed run
    # sees exactly the crops and flips an unbroken run would.
    gen = torch.Generator(device=device).manual_seed(cfg.seed * 100_003 + epoch * 1009 + rank)
    indices = torch.tensor(list(sampler), device=device)
    aug = Augment(crop_padding=cfg.crop_padding, flip=cfg.flip)
    if cfg.view == "photo":
        assert data.photos is not None and data.teacher is not None
        n_photos = photos_per_batch(cfg)
        return PhotoViewBatches(data.photos.images, data.photos.label_sets, data.teacher,
                                data.train, n_photos, VIEW_MEAN, VIEW_STD, gen)  # fmt: skip
    if data.photos is None:
        return BatchLoader(data.train, indices, cfg.batch_size, cfg.resize, aug, gen)
    n_photos = photos_per_batch(cfg)
    photos = (data.photos.images, data.photos.label_sets)
    photo_aug = PhotoLike().scaled(cfg.photo_aug)
    weights = photo_weights(cfg, data.photos.folders, device)
    return MixedBatchLoader(data.train, indices, photos, cfg.batch_size - n_photos,
                            n_photos, cfg.resize, aug, photo_aug, cfg.fm_photo_like, gen,
                            weights)  # fmt: skip


# The folder names the generated examples carry among the photos.
PIPELINE_FOLDER, NON_GARMENT_FOLDER = "(pipeline copy)", "(non-garment)"


def photo_weights(
    cfg: TrainConfig, folders: tuple[str, ...], device: torch.device
) -> Tensor | None:
    """Sampling weights over the photo pool: pipeline copies and non-garments get their shares,
    real photos the rest (per type equally with --balance-photos); None: uniform draws."""
    generated = {PIPELINE_FOLDER: cfg.pipeline_share, NON_GARMENT_FOLDER: cfg.non_garment_share}
    present = {k: v for k, v in generated.items() if k in folders}
    if not present and not cfg.balance_photos:
        return None
    real = [f for f in folders if f not in generated]
    counts = {f: folders.count(f) for f in set(folders)}
    real_share = 1.0 - sum(present.values())
    types = len(set(real))
    weights = []
    for f in folders:
        if f in present:
            weights.append(present[f] / counts[f])
        elif cfg.balance_photos:
            weights.append(real_share / types / counts[f])
        else:
            weights.append(real_share / len(real))
    return torch.tensor(weights, device=device)


def evaluate_epoch(
    model: nn.Module, cfg: TrainConfig, data: Data, rank: int, world: int
) -> tuple[int, int]:
    """(correct, total) on this rank's share of the test split."""
    indices = torch.arange(rank, len(data.test), world, device=data.test.labels.device)
    mean, std = input_normalisation(cfg)
    loader = BatchLoader(data.test, indices, cfg.eval_batch_size, cfg.resize, mean=mean, std=std)
    return count_correct(model, loader, cfg.channels_last)


@torch.no_grad()
def photo_accuracy(model: nn.Module, cfg: TrainConfig, photos: PhotoSet) -> dict[str, float]:
    """Top-1 per garment type on validation photos, and their mean over the scored types."""
    model.eval()
    device = next(model.parameters()).device
    if cfg.view == "photo":
        preds = [model(normalise(photos.images[i : i + 256].to(device), VIEW_MEAN, VIEW_STD))
                 for i in range(0, len(photos), 256)]  # fmt: skip
        return scored_accuracy(photos, torch.cat(preds).argmax(1).cpu())
    x = to_model_input(photos.images.to(device), cfg.resize, MEAN, STD)
    return scored_accuracy(photos, model(x).argmax(1).cpu())


def input_normalisation(cfg: TrainConfig) -> tuple[float, float]:
    """(mean, std) the network's input is normalised with: the view's."""
    return (VIEW_MEAN, VIEW_STD) if cfg.view == "photo" else (MEAN, STD)


def epoch_record(
    epoch: int,
    lr: float,
    trained: tuple[float, float, int, float],
    tested: tuple[int, int],
    world: int,
) -> dict[str, Any]:
    """The epoch's metrics line, summed over all ranks."""
    loss, acc, seen, seconds = trained
    totals = torch.tensor([loss * seen, acc * seen, seen, *tested, seconds], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(totals)
    loss_sum, correct_train, seen_all, correct, total, sec_sum = totals.tolist()
    return {
        "epoch": epoch,
        "train_loss": loss_sum / seen_all,
        "train_acc": correct_train / seen_all,
        "test_acc": correct / total,
        # Each rank trains in parallel, so wall time is the mean of their times.
        "examples_per_sec": seen_all / (sec_sum / world),
        "lr": lr,
        "seconds": sec_sum / world,
    }


# -----------------------------------------------------------------------------
# Output: metrics, curves, checkpoints and the state a resumed run starts from


def _write_epoch(
    out: Path, stepper: Stepper, cfg: TrainConfig, state: dict[str, Any], record: dict[str, Any]
) -> None:
    """Rank 0's per-epoch output: metrics line, curves, last and best checkpoints, resume state."""
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    plot_curves(state["history"], out / "curves.png")
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUNTIME_FIELDS}
    recipe["test_images"] = cfg.test_subset or 10_000
    is_best = record["test_acc"] > state["best_acc"]
    if is_best:
        state["best_acc"], state["best_epoch"] = record["test_acc"], record["epoch"]
    metrics = {**record, "best_epoch": state["best_epoch"], "best_test_acc": state["best_acc"]}
    mean, std = input_normalisation(cfg)
    kwargs: dict[str, Any] = dict(
        class_names=CLASS_NAMES,
        input_size=cfg.resize,
        mean=mean,
        std=std,
        view=cfg.view,
        recipe=recipe,
        metrics=metrics,
        weights_dtype=getattr(torch, cfg.weights_dtype),
    )
    save_checkpoint(out / "last", stepper.served, **kwargs)
    if is_best:
        save_checkpoint(out / "best", stepper.served, **kwargs)
    _save_state(out, stepper, {**state, "config": dataclasses.asdict(cfg)})


def _save_state(out: Path, stepper: Stepper, state: dict[str, Any]) -> None:
    """Resume state without pickle: tensors to safetensors, the rest to JSON, swapped atomically."""
    model = getattr(stepper.model, "module", stepper.model)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if stepper.ema is not None:
        for k, v in stepper.ema.state_dict().items():
            tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    opt = stepper.optimizer.state_dict()
    for idx, param_state in opt["state"].items():
        for name, value in param_state.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
    state = {**state, "param_groups": opt["param_groups"]}
    tmp = out / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out / "state.safetensors")
    (out / "state.json.tmp").write_text(json.dumps(state, indent=2))
    (out / "state.json.tmp").replace(out / "state.json")


def _load_state(out: Path, stepper: Stepper, device: torch.device) -> dict[str, Any]:
    state = json.loads((out / "state.json").read_text())
    tensors = load_file(str(out / "state.safetensors"), device=str(device))
    stepper.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if stepper.ema is not None:
        stepper.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    optimizer = stepper.optimizer
    opt_state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    return state


# -----------------------------------------------------------------------------
# Building a run: processes, data, model


def setup_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device); torchrun sets WORLD_SIZE, RANK and LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(cfg.device)
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


@dataclass
class Data:
    """What a run trains and evaluates on, on the training device."""

    train: Split
    test: Split
    photos: PhotoSet | None = None  # the photos' training split
    photo_val: PhotoSet | None = None  # their validation split: never trained on
    teacher: Tensor | None = None  # the photo view's: the teacher's logits of each photo


def build_data(cfg: TrainConfig, device: torch.device) -> Data:
    """Fashion-MNIST's train and test splits (or their first N images) and the photos, on device."""
    train = load_split("train", cfg.data_dir)
    train = Split(
        train.images[: len(train) - cfg.fm_holdout], train.labels[: len(train) - cfg.fm_holdout]
    )
    train = train.subset(cfg.train_subset)
    test = load_split("test", cfg.data_dir).subset(cfg.test_subset)
    data = Data(
        train=Split(train.images.to(device), train.labels.to(device)),
        test=Split(test.images.to(device), test.labels.to(device)),
    )
    if cfg.view == "photo":
        data.photos, data.photo_val, data.teacher = photo_view_data(cfg, device)
    elif cfg.photos:
        # Each folder keeps its own validation split, so adding a folder leaves the others' alone.
        trains, vals = [], []
        for folder in filter(None, cfg.photos.split(",")):
            photos = load_photos(folder)
            train_idx, val_idx = validation_split(photos)
            if not cfg.outlier_exposure:
                # Photos of none of the ten classes (hats, shorts, skirts) teach nothing then.
                train_idx = train_idx[photos.in_class[train_idx]]
            trains.append(photos.select(train_idx))
            vals.append(photos.select(val_idx))
        trains += generated_photos(cfg, train)
        data.photos = concat_photos(trains).to(device)
        data.photo_val = vals[0]
    return data


def photo_view_data(cfg: TrainConfig, device: torch.device) -> tuple[PhotoSet, PhotoSet, Tensor]:
    """The photo view's training photos, validation photos and the teacher's logits for the
    first; the teacher is fine-tuned first when its folder holds no answers yet."""
    from model.training import teacher

    assert cfg.photos and cfg.teacher
    teacher_cfg = teacher.TeacherConfig(photos=cfg.photos, out=cfg.teacher)
    if not (Path(cfg.teacher) / "logits.safetensors").exists():
        teacher.fine_tune(teacher_cfg)
    soft = teacher.soft_targets(teacher_cfg)
    train, val = teacher.photo_splits(cfg.photos, cfg.resize, 1)
    logits = torch.stack([soft[f] for f in train.files])
    return train.to(device), val, logits.to(device)


def generated_photos(cfg: TrainConfig, train: Split) -> list[PhotoSet]:
    """The pipeline copies and synthetic non-garments cfg asks for, as photo sets (cached)."""
    from model.framing import non_garment_inputs, parse_weights, pipeline_copies

    out = []
    if cfg.pipeline_copies:
        gen = torch.Generator().manual_seed(cfg.seed + 7)
        pick = torch.randperm(len(train), generator=gen)[: cfg.pipeline_copies]
        weights = cfg.pipeline_weights
        suffix = f"-{hashlib.sha256(weights.encode()).hexdigest()[:8]}" if weights else ""
        images = cached_array(
            f"pipeline-{cfg.seed}-{cfg.pipeline_copies}-{len(train)}{suffix}",
            lambda: pipeline_copies(train.images[pick].numpy(), cfg.seed, parse_weights(weights)),
        )
        sets = F.one_hot(train.labels[pick], len(CLASS_NAMES)).bool()
        out.append(PhotoSet(torch.from_numpy(images), sets.cpu(),
                            (PIPELINE_FOLDER,) * len(pick), ("",) * len(pick)))  # fmt: skip
    if cfg.non_garments:
        n = cfg.non_garments
        # Seed 1 trains; model.calibrate and the tests draw theirs from other seeds.
        images = cached_array(
            f"non-garments-1-{n}",
            lambda: non_garment_inputs(n, seed=1),
        )
        empty = torch.zeros(n, len(CLASS_NAMES), dtype=torch.bool)
        out.append(PhotoSet(torch.from_numpy(images), empty, (NON_GARMENT_FOLDER,) * n, ("",) * n))
    return out


def cached_array(name: str, build: Callable[[], np.ndarray]) -> np.ndarray:
    """build()'s array, cached under the data cache keyed by name and the code that makes it."""
    import hashlib
    import inspect

    from model import framing, preprocess

    code = inspect.getsource(framing) + inspect.getsource(preprocess)
    key = hashlib.sha256(code.encode()).hexdigest()[:12]
    path = DEFAULT_CACHE_DIR / f"{name}-{key}.npy"
    if path.is_file():
        return np.load(path)
    array = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), array)
    path.with_suffix(".tmp.npy").replace(path)
    return array


def build_model(cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, Stepper]:
    """The network, Xavier-initialised from cfg.seed, and its optimisation step."""
    torch.manual_seed(cfg.seed)
    model = resnet18(num_classes=len(CLASS_NAMES))
    init_xavier(model)
    if cfg.init_from:
        model.load_state_dict(load_checkpoint(cfg.init_from).model.state_dict())
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, make_stepper(model, cfg, device)


# -----------------------------------------------------------------------------
# The run


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training as cfg says; returns the final state."""
    # -- configuration, processes and device ---------------------------------
    cfg = with_saved_recipe(cfg)
    out = Path(cfg.out)
    rank, world, device = setup_distributed(cfg)
    is_main = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # -- data, model and optimiser, resumed state ----------------------------
    data = build_data(cfg, device)
    model, stepper = build_model(cfg, device)
    state: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "best_acc": -1.0,
        "best_epoch": 0,
        "history": [],
    }
    if cfg.resume and (out / "state.json").exists():
        state = _load_state(out, stepper, device)
        if is_main:
            print(
                f"resuming {out} after epoch {state['epoch']} of {cfg.epochs} "
                "(recipe from state.json)"
            )
    if world > 1:
        stepper.model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    sampler = DistributedSampler(
        range(len(data.train)), num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed
    )
    total_steps = math.ceil(len(sampler) / (cfg.batch_size - photos_per_batch(cfg))) * cfg.epochs
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        print(
            f"training d2l-resnet18 on {device} ({world} process(es)), {len(data.train)} train / "
            f"{len(data.test)} test images at {cfg.resize}x{cfg.resize}"
        )

    # -- the loop: train an epoch, evaluate, write ---------------------------
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        sampler.set_epoch(epoch)
        loader = train_batches(cfg, data, sampler, epoch, rank, device)
        bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   dynamic_ncols=True, disable=not (is_main and cfg.progress))  # fmt: skip
        step = state["step"]

        def set_lr() -> None:
            nonlocal step
            for group in stepper.optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, cfg)
            step += 1

        loss, acc, seen, seconds = run_epoch(stepper, loader, set_lr, bar)
        bar.close()
        correct, total = evaluate_epoch(stepper.served, cfg, data, rank, world)
        lr = lr_at(step, total_steps, cfg)
        record = epoch_record(epoch, lr, (loss, acc, seen, seconds), (correct, total), world)
        if data.photo_val is not None:
            record["photo_val"] = photo_accuracy(stepper.served, cfg, data.photo_val)
        state["step"], state["epoch"] = step, epoch
        state["history"].append(record)
        if is_main:
            print(
                f"epoch {epoch}/{cfg.epochs}: loss {record['train_loss']:.3f}, "
                f"train acc {record['train_acc']:.3f}, test acc {record['test_acc']:.3f}, "
                f"{record['examples_per_sec']:.1f} examples/sec on {device}"
                + (
                    f", photo val {record['photo_val']['mean']:.3f}"
                    if "photo_val" in record
                    else ""
                ),
                flush=True,
            )
            _write_epoch(out, stepper, cfg, state, record)
        if world > 1:
            dist.barrier()
    # -- the served graphs of the checkpoints written, once at the end --------
    if is_main and state["epoch"] and cfg.view == "silhouette":
        for name in ("best", "last"):
            write_graphs(load_checkpoint(out / f"{name}.safetensors"))
    if world > 1:
        dist.destroy_process_group()
    return state


# -----------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Build a TrainConfig from the command line: one flag per field, its help the field's."""
    p = Parser(
        prog="python -m model.train",
        description="Train d2l's ResNet-18 on Fashion-MNIST. Defaults are d2l's recipe.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default="d2l",
        help="a named recipe: its values "
        "become the defaults of the flags below (photo: the photo view, taught by the teacher)",
    )
    types = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        if types[f.name] is bool:
            action = "store_false" if f.default else "store_true"
            p.add_argument(flag, dest=f.name, action=action, help=meta["help"])
            continue
        kind = next(
            t for t in typing.get_args(types[f.name]) or (types[f.name],) if t is not type(None)
        )
        p.add_argument(flag, dest=f.name, type=kind, default=f.default, help=meta["help"],
                       choices=meta.get("choices"))  # fmt: skip
    recipe, _ = p.parse_known_args(argv)
    p.set_defaults(**RECIPES[recipe.recipe])
    args = vars(p.parse_args(argv))
    args.pop("recipe")
    cfg = TrainConfig(**args)
    if problem := config_problem(cfg):
        p.error(problem)
    return cfg


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
        from model.framing import parse_weights

        try:
            parse_weights(cfg.pipeline_weights)
        except ValueError as exc:
            return f"--pipeline-weights: {exc}"
    if cfg.init_from and not Path(cfg.init_from).exists():
        return f"--init-from {cfg.init_from}: no such checkpoint"
    return None


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    train(parse_args(argv))


if __name__ == "__main__":
    run("python -m model.train", main)
