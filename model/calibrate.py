"""Confidence that means something: temperature scaling and a "none of the ten" threshold.

`python -m model.calibrate --checkpoint PATH` fits one temperature T (probabilities become
softmax(logits / T)) on the validation data, the photos' validation split and a held-out slice of
Fashion-MNIST's training set, and picks the confidence below which a photo is flagged as probably
none of the ten classes, so that at most 5 % of the in-class validation photos of every garment
type are flagged. Both go into the checkpoint's metadata (its weights stay as they are); serving
applies them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from model.checkpoint import Checkpoint, load_checkpoint, update_metadata
from model.cli import Parser, run
from model.data import load_split
from model.loss import SetCrossEntropy, in_set
from model.photos import (
    DEFAULT_PHOTO_DIR,
    PhotoSet,
    concat_photos,
    load_photos,
    validation_split,
)
from model.preprocess import to_model_input

ECE_BINS = 15
# The share of in-class validation photos the "none of the ten" flag may wrongly raise.
FLAG_BUDGET = 0.05
# Fashion-MNIST training images at the end of the set used when the recipe held none out.
DEFAULT_FM_SLICE = 2000


@torch.no_grad()
def logits_of(ckpt: Checkpoint, images: Tensor, batch_size: int = 1024) -> Tensor:
    """The network's logits for (N, 28, 28) uint8 images, in eval mode, as float32 on the CPU."""
    model: nn.Module = ckpt.model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start : start + batch_size], ckpt.input_size, ckpt.mean, ckpt.std)
        out.append(model(x.to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, ckpt.num_classes)


def as_sets(targets: Tensor, num_classes: int) -> Tensor:
    """Class ids (N,) or bool sets (N, C) as bool sets."""
    if targets.dtype == torch.bool:
        return targets
    return torch.nn.functional.one_hot(targets.long(), num_classes).bool()


def set_nll(logits: Tensor, sets: Tensor, temperature: float = 1.0) -> float:
    """Mean -log sum_{c in set} softmax(logits / T)_c: the training loss at temperature T."""
    return float(SetCrossEntropy()(logits / temperature, sets))


def fit_temperature(logits: Tensor, sets: Tensor, lo: float = 0.05, hi: float = 20.0) -> float:
    """The T minimising the set NLL: golden-section search over log T (the NLL is unimodal)."""
    a, b = math.log(lo), math.log(hi)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = set_nll(logits, sets, math.exp(c)), set_nll(logits, sets, math.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = set_nll(logits, sets, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = set_nll(logits, sets, math.exp(d))
    return math.exp((a + b) / 2)


def expected_calibration_error(confidence: Tensor, correct: Tensor, bins: int = ECE_BINS) -> float:
    """ECE: sum over equal-width confidence bins of (bin share) x |accuracy - mean confidence|."""
    if len(confidence) == 0:
        return float("nan")
    edges = torch.linspace(0, 1, bins + 1)
    which = torch.bucketize(confidence, edges[1:-1], right=True)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            gap = correct[in_bin].double().mean() - confidence[in_bin].double().mean()
            total += float(in_bin.double().mean()) * abs(float(gap))
    return total


def auroc(positive: Tensor, negative: Tensor) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    pos, neg = positive.double().view(-1, 1), negative.double().view(1, -1)
    return float((pos > neg).double().mean() + 0.5 * (pos == neg).double().mean())


@dataclass(frozen=True)
class Scored:
    """Logits of a set of images and the classes each may be."""

    logits: Tensor
    sets: Tensor

    def confidence(self, temperature: float) -> Tensor:
        return (self.logits / temperature).softmax(1).max(1).values

    def correct(self) -> Tensor:
        return in_set(self.logits.argmax(1), self.sets)

    def ece(self, temperature: float) -> float:
        return expected_calibration_error(self.confidence(temperature), self.correct())


def cat(*parts: Scored) -> Scored:
    return Scored(torch.cat([p.logits for p in parts]), torch.cat([p.sets for p in parts]))


def photo_scores(logits: Tensor, photos: PhotoSet) -> tuple[Scored, Scored]:
    """(in-class, none-of-the-ten) scores of photos, given their logits."""
    inside = photos.in_class
    return Scored(logits[inside], photos.label_sets[inside]), Scored(
        logits[~inside], photos.label_sets[~inside]
    )


def fm_slice(ckpt: Checkpoint, data_dir: str | None = None) -> tuple[Scored, int]:
    """Scores of the Fashion-MNIST training images the recipe held out (or the last 2,000)."""
    n = int(ckpt.meta.get("recipe", {}).get("fm_holdout") or DEFAULT_FM_SLICE)
    train = load_split("train", data_dir)
    images, labels = train.images[-n:], train.labels[-n:]
    return Scored(logits_of(ckpt, images), as_sets(labels, ckpt.num_classes)), n


def calibration_report(
    photos_in: Scored, photos_out: Scored, fm: Scored, temperature: float, threshold: float | None
) -> dict[str, Any]:
    """ECE before (T = 1) and at `temperature`, AUROC of in-class vs none-of-the-ten confidence,
    and how many photos the flag raises at `threshold`."""
    both = cat(photos_in, fm)
    conf_in, conf_out = photos_in.confidence(temperature), photos_out.confidence(temperature)
    report: dict[str, Any] = {
        "temperature": temperature,
        "ece_before": {
            "validation": both.ece(1.0),
            "photos": photos_in.ece(1.0),
            "fashion_mnist": fm.ece(1.0),
        },
        "ece_after": {
            "validation": both.ece(temperature),
            "photos": photos_in.ece(temperature),
            "fashion_mnist": fm.ece(temperature),
        },
        # Higher confidence should mean "one of the ten": in-class photos are the positives.
        "none_of_the_ten_auroc": auroc(conf_in, conf_out),
        "photos": {"in_class": len(conf_in), "none_of_the_ten": len(conf_out)},
    }
    if threshold is not None:
        report["flag_threshold"] = threshold
        report["flagged"] = {
            "in_class": float((conf_in < threshold).double().mean()),
            "none_of_the_ten": float((conf_out < threshold).double().mean()),
        }
    return report


def flag_threshold(confidence_in_class: Tensor, budget: float = FLAG_BUDGET) -> float:
    """The largest confidence threshold that flags at most `budget` of the in-class photos."""
    ordered = confidence_in_class.double().sort().values
    k = math.floor(budget * len(ordered))  # at most k photos may lie below the threshold
    return float(ordered[k]) if len(ordered) else 0.0


def per_type_threshold(
    confidence: Tensor, folders: tuple[str, ...], budget: float = FLAG_BUDGET
) -> float:
    """The largest threshold that flags at most `budget` of the in-class photos of every garment
    type (folder): the strictest type sets it, so no type is flagged more than the others'
    budget (shoes, say, whose confidence runs lower)."""
    types = sorted(set(folders))
    per_type = []
    for t in types:
        members = torch.tensor([f == t for f in folders])
        per_type.append(flag_threshold(confidence[members], budget))
    return min(per_type) if per_type else 0.0


def flagged_by_type(
    confidence: Tensor, folders: tuple[str, ...], threshold: float
) -> dict[str, float]:
    """The share of each folder's photos below the threshold."""
    return {
        t: float((confidence[torch.tensor([f == t for f in folders])] < threshold).double().mean())
        for t in sorted(set(folders))
    }


# Synthetic non-garments the flag is checked on: a seed apart from the training ones (1).
NON_GARMENT_SEED, NON_GARMENT_COUNT = 2, 500


def non_garment_confidence(ckpt: Checkpoint, temperature: float) -> Tensor:
    """Calibrated confidence on seeded synthetic non-garments (gradients, noise, shapes, text,
    textures) that training never saw, through the served preprocessing."""
    import numpy as np

    from model.framing import non_garments
    from model.preprocess import prepare_photo

    images = np.stack([prepare_photo(b) for b in non_garments(NON_GARMENT_COUNT, NON_GARMENT_SEED)])
    return (logits_of(ckpt, torch.from_numpy(images)) / temperature).softmax(1).max(1).values


def calibrate(
    ckpt: Checkpoint, photos_dir: str | Path, data_dir: str | None = None
) -> dict[str, Any]:
    """Fit the temperature and the flag threshold; returns the calibration record."""
    val = validation_photos(photos_dir)
    photos_in, photos_out = photo_scores(logits_of(ckpt, val.images), val)
    fm, n_fm = fm_slice(ckpt, data_dir)
    both = cat(photos_in, fm)
    temperature = fit_temperature(both.logits, both.sets)
    inside = val.in_class
    folders_in = tuple(f for f, i in zip(val.folders, inside.tolist(), strict=True) if i)
    conf_in = photos_in.confidence(temperature)
    threshold = per_type_threshold(conf_in, folders_in)
    report = calibration_report(photos_in, photos_out, fm, temperature, threshold)
    report["flagged_by_type"] = flagged_by_type(conf_in, folders_in, threshold)
    report["flagged"]["synthetic_non_garments"] = float(
        (non_garment_confidence(ckpt, temperature) < threshold).double().mean()
    )
    report["fitted_on"] = {
        "photo_validation_in_class": len(photos_in.logits),
        "fashion_mnist_train_last": n_fm,
    }
    return report


def validation_photos(photos_dirs: str | Path) -> PhotoSet:
    """The validation split of each comma-separated photo folder, one after the other."""
    parts = []
    for folder in filter(None, str(photos_dirs).split(",")):
        photos = load_photos(folder)
        parts.append(photos.select(validation_split(photos)[1]))
    return concat_photos(parts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: fit, print, and write the calibration into the checkpoint's metadata."""
    p = Parser(prog="python -m model.calibrate", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="the .safetensors (or .json) file")
    p.add_argument(
        "--photos",
        default=f"{DEFAULT_PHOTO_DIR},{DEFAULT_PHOTO_DIR.parent / 'clothing-photos-more'}",
        help="labelled photo folders, comma-separated (their validation splits are used)",
    )
    p.add_argument("--data-dir", help="folder with Fashion-MNIST's idx files")
    p.add_argument("--dry-run", action="store_true", help="print only, leave the metadata")
    args = p.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    report = calibrate(ckpt, args.photos, args.data_dir)
    print(json.dumps(report, indent=2))
    if not args.dry_run:
        update_metadata(args.checkpoint, calibration=report)
        print(f"calibration written to {args.checkpoint}'s metadata")
        from model.export import write_graphs  # the temperature is in the graph: export again

        for path in write_graphs(load_checkpoint(args.checkpoint)):
            print(f"wrote {path}")
    return report


if __name__ == "__main__":
    run("python -m model.calibrate", main)
