"""What a run trains and evaluates on: Fashion-MNIST, the photos (either view), the generated
examples, and the batches of an epoch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils.data import DistributedSampler

from model.data.cache import cached_array
from model.data.fashion_mnist import CLASS_NAMES, MEAN, STD, Split, load_split
from model.data.photos import (
    PhotoSet,
    concat_photos,
    load_photos,
    scored_accuracy,
    validation_split,
)
from model.images.silhouette import to_model_input
from model.training.batches import Augment, BatchLoader, MixedBatchLoader, PhotoLike
from model.training.config import TrainConfig
from model.training.photo_batches import VIEW_MEAN, VIEW_STD, PhotoViewBatches, normalise
from model.training.steps import count_correct

# The folder names the generated examples carry among the photos.
PIPELINE_FOLDER, NON_GARMENT_FOLDER = "(pipeline copy)", "(non-garment)"


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
    train, val = teacher.photo_splits(cfg.photos, cfg.resize, 1, cfg.photo_framing)
    logits = torch.stack([soft[f] for f in train.files])
    if cfg.imagenet_footwear:
        shares = teacher.footwear_shares(teacher_cfg)
        logits = teacher.with_footwear_shares(logits, train.label_sets, shares, train.files)
    return train.to(device), val, logits.to(device)


def generated_photos(cfg: TrainConfig, train: Split) -> list[PhotoSet]:
    """The pipeline copies and synthetic non-garments cfg asks for, as photo sets (cached)."""
    from model.data.renderings import non_garment_inputs, parse_weights, pipeline_copies

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


def photos_per_batch(cfg: TrainConfig) -> int:
    """How many of each batch's examples are photos."""
    return round(cfg.batch_size * cfg.photo_share) if cfg.photos else 0


def input_normalisation(cfg: TrainConfig) -> tuple[float, float]:
    """(mean, std) the network's input is normalised with: the view's."""
    return (VIEW_MEAN, VIEW_STD) if cfg.view == "photo" else (MEAN, STD)


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
