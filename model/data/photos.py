"""Real clothing photos as training and validation data.

A photo folder holds `labels.csv` (file, folder, fashion_mnist_classes) and the photos. Each
photo's label is a *set* of Fashion-MNIST classes ("5|7|9": some footwear) or empty (a hat: none
of the ten). Every photo becomes model input through `photo_to_fashion_mnist`, the exact code
path `/predict` runs, so training and serving cannot drift; the result is cached, keyed by the
photos' bytes and the preprocessing code, so changing either rebuilds it.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from model.data.fashion_mnist import CLASS_NAMES, DEFAULT_CACHE_DIR
from model.images import decode, silhouette
from model.images.silhouette import SILHOUETTE_VERSION
from model.training.loss import in_set

# Where the photos are beside a checkout of this repository (CI and development machines).
DEFAULT_PHOTO_DIR = Path(__file__).resolve().parents[3] / "shared" / "clothing-photos"
DEFAULT_PHOTO_FOLDERS = f"{DEFAULT_PHOTO_DIR},{DEFAULT_PHOTO_DIR.parent / 'clothing-photos-more'}"
# Garment types whose mean top-1 is the headline photo figure (longsleeve, Pullover or Shirt,
# is reported beside them; hats, shorts and skirts are none of the ten classes).
SCORED_TYPES = ("t-shirt", "pants", "dress", "outwear", "shirt", "shoes")
# The validation split: this share of every folder, drawn with this seed, never trained on.
VAL_FRACTION = 0.2
SPLIT_SEED = 0


class PhotosNotFoundError(FileNotFoundError):
    """No labels.csv where the photos were looked for."""


@dataclass(frozen=True)
class PhotoSet:
    """Photos as model input: (N, 28, 28) uint8 images, (N, classes) bool label sets."""

    images: Tensor
    label_sets: Tensor
    folders: tuple[str, ...]
    files: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.files)

    def select(self, indices: Sequence[int] | Tensor) -> PhotoSet:
        """The photos at indices, in that order."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return PhotoSet(
            self.images[idx],
            self.label_sets[idx],
            tuple(self.folders[i] for i in idx.tolist()),
            tuple(self.files[i] for i in idx.tolist()),
        )

    def to(self, device: torch.device) -> PhotoSet:
        """The same photos with their tensors on device."""
        return PhotoSet(
            self.images.to(device), self.label_sets.to(device), self.folders, self.files
        )

    @property
    def in_class(self) -> Tensor:
        """(N,) bool: the photo is one of the ten classes (its set is not empty)."""
        return self.label_sets.any(1)


def parse_classes(text: str, num_classes: int = len(CLASS_NAMES)) -> Tensor:
    """'5|7|9' -> bool mask over the classes; '' -> all False (none of the ten)."""
    mask = torch.zeros(num_classes, dtype=torch.bool)
    for part in filter(None, text.strip().split("|")):
        cls = int(part)
        if not 0 <= cls < num_classes:
            raise ValueError(f"class {cls} is not in 0..{num_classes - 1}")
        mask[cls] = True
    return mask


def read_labels(folder: Path) -> list[dict[str, str]]:
    """The rows of folder/labels.csv."""
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise PhotosNotFoundError(
            f"no labels.csv in {folder}: point --photos (or the tests' CLOTHING_PHOTOS) at a "
            "folder of labelled photos"
        )
    with open(labels, newline="") as f:
        return list(csv.DictReader(f))


def _cached_images(
    folder: Path,
    rows: list[dict[str, str]],
    name: str,
    recipe: str,
    make: Callable[[bytes], np.ndarray],
    cache_dir: Path | None,
) -> Tensor:
    """make(photo bytes) of every row's photo, stacked; cached under cache_dir keyed by the
    recipe (what make does, and its version) and every photo's name and bytes."""
    digest = hashlib.sha256(recipe.encode())
    blobs = []
    for row in rows:
        data = (folder / row["file"]).read_bytes()
        digest.update(row["file"].encode() + b"\0" + hashlib.sha256(data).digest())
        blobs.append(data)
    cache = cache_dir / f"{name}-{digest.hexdigest()[:16]}.safetensors" if cache_dir else None
    if cache is not None and cache.is_file():
        return load_file(str(cache))["images"]
    images = torch.from_numpy(np.stack([make(data) for data in blobs]))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        save_file({"images": images}, str(tmp))
        tmp.replace(cache)
    return images


def _photo_set(images: Tensor, rows: list[dict[str, str]]) -> PhotoSet:
    return PhotoSet(
        images=images,
        label_sets=torch.stack([parse_classes(r["fashion_mnist_classes"]) for r in rows]),
        folders=tuple(r["folder"] for r in rows),
        files=tuple(r["file"] for r in rows),
    )


def load_photos(folder: str | Path, cache_dir: Path | None = DEFAULT_CACHE_DIR) -> PhotoSet:
    """Every photo in folder/labels.csv as the silhouette view's input, (N, 28, 28) uint8, from
    the cache when it is current."""
    folder = Path(folder)
    rows = read_labels(folder)
    recipe = f"silhouette-{SILHOUETTE_VERSION}"
    images = _cached_images(folder, rows, "photos", recipe, silhouette.prepare_photo, cache_dir)
    return _photo_set(images, rows)


def concat_photos(sets: Sequence[PhotoSet]) -> PhotoSet:
    """Photo sets one after the other."""
    return PhotoSet(
        torch.cat([s.images for s in sets]),
        torch.cat([s.label_sets for s in sets]),
        tuple(f for s in sets for f in s.folders),
        tuple(f for s in sets for f in s.files),
    )


def split_photos(photos: PhotoSet, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train, validation) indices: per folder, a seeded ceil(val_fraction) share to validation."""
    gen = torch.Generator().manual_seed(seed)
    train, val = [], []
    for folder in sorted(set(photos.folders)):
        members = torch.tensor([i for i, f in enumerate(photos.folders) if f == folder])
        members = members[torch.randperm(len(members), generator=gen)]
        n_val = -(-len(members) * round(val_fraction * 1000) // 1000)  # ceil, exact for 0.15
        val.append(members[:n_val])
        train.append(members[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


def validation_split(photos: PhotoSet) -> tuple[Tensor, Tensor]:
    """The (train, validation) split that training, evaluation and calibration all use."""
    return split_photos(photos, VAL_FRACTION, SPLIT_SEED)


def scored_accuracy(photos: PhotoSet, predictions: Tensor) -> dict[str, float]:
    """Top-1 per in-class garment type (right when the prediction is in the set) and "mean",
    the mean over SCORED_TYPES present."""
    right = in_set(predictions.cpu(), photos.label_sets.cpu())
    per_type: dict[str, float] = {}
    for folder in sorted(set(photos.folders)):
        members = [i for i, f in enumerate(photos.folders) if f == folder]
        if photos.label_sets[members].any():
            per_type[folder] = float(right[members].double().mean())
    scored = [per_type[t] for t in SCORED_TYPES if t in per_type]
    per_type["mean"] = sum(scored) / len(scored) if scored else float("nan")
    return per_type


# Bumped when model.images.photo_view changes what it makes of a photo: it keys the view caches.
PHOTO_VIEW_VERSION = 1


def load_photo_views(
    folder: str | Path,
    size: int,
    channels: int,
    framing: str = "whole",
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
) -> PhotoSet:
    """Every photo in folder/labels.csv as the photo view sees it, (N, channels, size, size)
    uint8, from the cache when it is current."""
    from model.images.photo_view import framed_view

    folder = Path(folder)
    rows = read_labels(folder)
    recipe = f"view-{PHOTO_VIEW_VERSION}-{size}-{channels}"
    if framing != "whole":
        recipe += f"-{framing}"

    def make(data: bytes) -> np.ndarray:
        return framed_view(decode.decode_image(data), size, channels, framing)

    return _photo_set(_cached_images(folder, rows, "views", recipe, make, cache_dir), rows)
