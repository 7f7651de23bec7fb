"""The silhouette view, the photo view and their average, scored side by side on real photos.

    python benchmarks/combine_views.py --photo runs/photo/best.safetensors [--json out.json]

For each weight w of the photo view (0 = the silhouette alone, 1 = the photo view alone), the
answer is argmax(w p_photo + (1 - w) p_silhouette), each view's probabilities at its
checkpoint's temperature, or with --design another mix of the two (DESIGNS). Scored on the
validation splits of both photo folders (mean over the six scored garment types, and each type)
and on the labelled product photos.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.data.photos import (
    DEFAULT_PHOTO_FOLDERS,
    concat_photos,
    load_photo_views,
    load_photos,
    scored_accuracy,
    validation_split,
)
from model.images.decode import decode_image
from model.images.photo_view import framed_view
from model.images.silhouette import photo_to_fashion_mnist, to_model_input
from model.network.checkpoint import Checkpoint, load_checkpoint
from model.network.checkpoint_info import SHIPPED_CHECKPOINT

REAL_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "real-photos"
WEIGHTS = [round(w, 2) for w in np.arange(0, 1.01, 0.05)]


@torch.no_grad()
def probabilities(ckpt: Checkpoint, images: torch.Tensor) -> np.ndarray:
    """(N, classes) probabilities at the checkpoint's temperature: silhouettes (N, 28, 28) or
    photo views (N, C, S, S), both uint8."""
    model = ckpt.model.eval()
    out = []
    for start in range(0, len(images), 256):
        batch = images[start : start + 256]
        if batch.ndim == 3:
            x = to_model_input(batch, ckpt.input_size, ckpt.mean, ckpt.std)
        else:
            x = (batch.float() / 255.0 - ckpt.mean) / ckpt.std
        out.append(torch.softmax(model(x) / ckpt.temperature, 1))
    return torch.cat(out).numpy()


# The photos label footwear only as the set {sandal, sneaker, ankle boot}: which one it is, the
# photo view learnt from Fashion-MNIST alone.
FOOTWEAR = [5, 7, 9]


def _footwear_by_silhouette(p_photo: np.ndarray, p_sil: np.ndarray) -> np.ndarray:
    """p_photo with its footwear mass shared out as the silhouette shares its own."""
    out = p_photo.copy()
    within = p_sil[:, FOOTWEAR] / np.maximum(p_sil[:, FOOTWEAR].sum(1, keepdims=True), 1e-12)
    out[:, FOOTWEAR] = p_photo[:, FOOTWEAR].sum(1, keepdims=True) * within
    return out


Design = Callable[[np.ndarray, np.ndarray, float], np.ndarray]
# Ways to mix (p_photo, p_silhouette, w) into scores whose argmax is the answer.
DESIGNS: dict[str, Design] = {
    "average": lambda p, s, w: w * p + (1 - w) * s,
    "geometric": lambda p, s, w: w * np.log(p + 1e-12) + (1 - w) * np.log(s + 1e-12),
    "footwear-by-silhouette": lambda p, s, w: w * _footwear_by_silhouette(p, s) + (1 - w) * s,
}


def validation_views(folders: str, size: int, framing: str = "whole") -> tuple:
    """The validation photos of every folder as both views (same order) and as a PhotoSet."""
    silhouettes, views = [], []
    for folder in filter(None, folders.split(",")):
        photos = load_photos(folder)
        _, val = validation_split(photos)
        silhouettes.append(photos.select(val))
        views.append(load_photo_views(folder, size, 1, framing).select(val))
    return concat_photos(silhouettes), concat_photos(views)


def real_photo_probabilities(
    silhouette: Checkpoint, photo: Checkpoint, folder: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    sil, view, labels = [], [], []
    for row in rows:
        img = decode_image((folder / row["file"]).read_bytes())
        sil.append(photo_to_fashion_mnist(img))
        view.append(framed_view(img, photo.input_size, photo.in_channels, photo.framing))
        labels.append(int(row["label"]))
    return (
        probabilities(silhouette, torch.from_numpy(np.stack(sil))),
        probabilities(photo, torch.from_numpy(np.stack(view))),
        np.array(labels),
    )


def table(
    silhouette: Checkpoint,
    photo: Checkpoint,
    folders: str,
    real_photos: Path | None,
    design: str = "average",
) -> list[dict]:
    """A row per photo-view weight: each scored type, the mean, and the product photos right."""
    mix = DESIGNS[design]
    sil_set, view_set = validation_views(folders, photo.input_size, photo.framing)
    p_sil = probabilities(silhouette, sil_set.images)
    p_photo = probabilities(photo, view_set.images)
    real = None
    if real_photos is not None and (real_photos / "labels.csv").is_file():
        real = real_photo_probabilities(silhouette, photo, real_photos)
    rows = []
    for w in WEIGHTS:
        pred = torch.from_numpy(mix(p_photo, p_sil, w).argmax(1))
        row = {"design": design, "w": w, **scored_accuracy(sil_set, pred)}
        if real is not None:
            r_sil, r_photo, labels = real
            row["real_photos"] = int((mix(r_photo, r_sil, w).argmax(1) == labels).sum())
            row["real_photos_of"] = len(labels)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photo", required=True, help="the photo view's checkpoint")
    p.add_argument("--silhouette", default=str(SHIPPED_CHECKPOINT))
    p.add_argument("--photos", default=DEFAULT_PHOTO_FOLDERS)
    p.add_argument("--real-photos", type=Path, default=REAL_PHOTOS)
    p.add_argument("--design", choices=DESIGNS, default="average", help="how the views mix")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    silhouette, photo = load_checkpoint(args.silhouette), load_checkpoint(args.photo)
    rows = table(silhouette, photo, args.photos, args.real_photos, args.design)
    types = ("t-shirt", "pants", "dress", "outwear", "shirt", "shoes")
    print(f"{'w':>5} {'mean':>6} " + " ".join(f"{t:>8}" for t in types) + "  real photos")
    for row in rows:
        real = f"{row['real_photos']}/{row['real_photos_of']}" if "real_photos" in row else "-"
        scores = " ".join(f"{row.get(t, float('nan')):8.3f}" for t in types)
        print(f"{row['w']:5.2f} {row['mean']:6.3f} {scores}  {real}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
