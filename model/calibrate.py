"""Confidence that means something: temperature scaling, a garment head and a "none of the ten"
threshold.

`python -m model.calibrate --checkpoint PATH` fits one temperature T (probabilities become
softmax(logits / T)) on the validation data, the photos' validation split and a held-out slice of
Fashion-MNIST's training set; fits the garment head, a logistic regression on the network's
pooled features that tells garments (Fashion-MNIST, its images rendered as photos, the training
photos) from non-garments (synthetic ones of a seed of its own, the training split's hats, shorts
and skirts); and picks the garment score below which a photo is flagged as probably none of the
ten classes, so that at most 5 % of the in-class validation photos of every garment type are
flagged. All go into the checkpoint's metadata (its weights stay as they are); serving applies
them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from model.cli import Parser, run
from model.data.fashion_mnist import load_split
from model.data.photos import (
    DEFAULT_PHOTO_DIR,
    PhotoSet,
    concat_photos,
    load_photos,
    validation_split,
)
from model.images.silhouette import to_model_input
from model.network.checkpoint import Checkpoint, load_checkpoint, update_metadata
from model.network.classifier import Head
from model.training.loss import in_set
from model.training.scores import (
    as_sets,
    auroc,
    expected_calibration_error,
    fit_temperature,
    flagged_by_type,
    per_type_threshold,
)

# Fashion-MNIST training images at the end of the set used when the recipe held none out.
DEFAULT_FM_SLICE = 2000


@torch.no_grad()
def features_of(ckpt: Checkpoint, images: Tensor, batch_size: int = 1024) -> Tensor:
    """The network's pooled features (N, F) for (N, 28, 28) uint8 images, in eval mode, as
    float32 on the CPU: what its last Linear and the garment head read."""
    model: nn.Module = ckpt.model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(images[start : start + batch_size], ckpt.input_size, ckpt.mean, ckpt.std)
        out.append(model[:-1](x.to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model[-1].in_features)


@torch.no_grad()
def logits_of(ckpt: Checkpoint, images: Tensor, batch_size: int = 1024) -> Tensor:
    """The network's logits for (N, 28, 28) uint8 images, in eval mode, as float32 on the CPU."""
    return logits_from(ckpt, features_of(ckpt, images, batch_size))


@torch.no_grad()
def logits_from(ckpt: Checkpoint, features: Tensor) -> Tensor:
    linear = ckpt.model[-1]
    return linear(features.to(linear.weight.device, linear.weight.dtype)).float().cpu()


@torch.no_grad()
def garment_scores(
    ckpt: Checkpoint, features: Tensor, head: dict[str, Any] | None, temperature: float
) -> Tensor:
    """The flag's score of each image from its features, as the served model computes it
    (model.network.classifier.Head): the garment head's probability, or the top class's without
    one."""
    linear = ckpt.model[-1]
    x = features.to(linear.weight.device, linear.weight.dtype)
    return Head(linear, temperature, head).to(x.device)(x)[1].float().cpu()


@dataclass(frozen=True)
class Scored:
    """Logits of a set of images and the classes each may be."""

    logits: Tensor
    sets: Tensor
    garment: Tensor | None = None  # the flag's score; None: the confidence at the temperature

    def flag_score(self, temperature: float) -> Tensor:
        return self.confidence(temperature) if self.garment is None else self.garment

    def confidence(self, temperature: float) -> Tensor:
        return (self.logits / temperature).softmax(1).max(1).values

    def correct(self) -> Tensor:
        return in_set(self.logits.argmax(1), self.sets)

    def ece(self, temperature: float) -> float:
        return expected_calibration_error(self.confidence(temperature), self.correct())


def cat(*parts: Scored) -> Scored:
    return Scored(torch.cat([p.logits for p in parts]), torch.cat([p.sets for p in parts]))


def photo_scores(
    logits: Tensor, photos: PhotoSet, garment: Tensor | None = None
) -> tuple[Scored, Scored]:
    """(in-class, none-of-the-ten) scores of photos, given their logits (and flag scores)."""
    inside = photos.in_class
    return Scored(
        logits[inside], photos.label_sets[inside], None if garment is None else garment[inside]
    ), Scored(
        logits[~inside], photos.label_sets[~inside], None if garment is None else garment[~inside]
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
    conf_in, conf_out = photos_in.flag_score(temperature), photos_out.flag_score(temperature)
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
        # A higher flag score should mean "one of the ten": in-class photos are the positives.
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


# Synthetic non-garments (model.data.renderings) by seed: training draws seed 1, the flag is
# checked on NON_GARMENT_COUNT of seed 2, the garment head is fitted on seed 3.
NON_GARMENT_SEED, NON_GARMENT_COUNT = 2, 500
HEAD_SEED = 3
HEAD_SAMPLES = 4000  # synthetic non-garments and Fashion-MNIST images; half as many renderings
# Each source's share of the garment head's loss (spread over its images): other shares move the
# synthetic non-garments flagged by -3.8 to +1.2 points (500 images: 1.2 points is 6), and
# leaving the photos out costs the most (docs/model.md).
HEAD_WEIGHTS = {"fashion_mnist": 1.0, "renderings": 1.0, "photos": 2.0,
                "synthetic": 2.0, "outside_photos": 1.0}  # fmt: skip


def non_garment_images(n: int, seed: int) -> Tensor:
    """(n, 28, 28) uint8: seeded synthetic non-garments (gradients, noise, shapes, text,
    textures) through the served preprocessing."""
    from model.data.renderings import non_garment_inputs

    return torch.from_numpy(non_garment_inputs(n, seed))


def non_garment_scores(ckpt: Checkpoint, temperature: float, head: dict[str, Any] | None) -> Tensor:
    """The flag's score on the NON_GARMENT_COUNT synthetic non-garments nothing was fitted on."""
    features = features_of(ckpt, non_garment_images(NON_GARMENT_COUNT, NON_GARMENT_SEED))
    return garment_scores(ckpt, features, head, temperature)


def fit_garment_head(
    garments: list[tuple[Tensor, float]],
    others: list[tuple[Tensor, float]],
    steps: int = 600,
    weight_decay: float = 1e-4,
) -> dict[str, Any]:
    """A logistic regression on features, garments (label 1) against others (label 0), each
    (features, weight) part weighing `weight` in all. Fitted on standardised features from zero
    (convex: the same data, the same head), the standardisation folded into the weights."""
    x = torch.cat([f for f, _ in garments + others]).double()
    y = torch.cat([torch.full((len(f),), float(i < len(garments))) for i, (f, _) in
                   enumerate(garments + others)]).double()  # fmt: skip
    w = torch.cat([torch.full((len(f),), wt / max(len(f), 1)) for f, wt in garments + others])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xn = (x - mu) / sd
    weight = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=3e-3, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        logit = xn @ weight + bias
        loss = nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none")
        (loss * w.double()).sum().backward()
        opt.step()
    with torch.no_grad():
        folded = weight / sd
        return {"weight": folded.float().tolist(), "bias": float(bias - (folded * mu).sum())}


def garment_head_data(
    ckpt: Checkpoint, photos_dirs: str | Path, data_dir: str | None, samples: int
) -> tuple[list[tuple[Tensor, float]], list[tuple[Tensor, float]]]:
    """The garment head's (features, weight) parts from training data only: Fashion-MNIST's
    first `samples` training images and half as many rendered as photos through the served
    preprocessing (model.data.renderings.pipeline_copies), the training photos in and out of the ten
    classes, and `samples` synthetic non-garments of HEAD_SEED."""
    from model.data.renderings import pipeline_copies

    train = load_split("train", data_dir)
    fm = train.images[:samples]
    copies = pipeline_copies(train.images[samples : samples + samples // 2].numpy(), HEAD_SEED)
    photos = training_photos(photos_dirs)
    inside = photos.in_class
    feats = features_of(ckpt, photos.images)
    garments = [
        (features_of(ckpt, fm), HEAD_WEIGHTS["fashion_mnist"]),
        (features_of(ckpt, torch.from_numpy(copies)), HEAD_WEIGHTS["renderings"]),
        (feats[inside], HEAD_WEIGHTS["photos"]),
    ]
    others = [
        (features_of(ckpt, non_garment_images(samples, HEAD_SEED)), HEAD_WEIGHTS["synthetic"]),
        (feats[~inside], HEAD_WEIGHTS["outside_photos"]),
    ]
    return garments, [(f, wt) for f, wt in others if len(f)]


def calibrate(
    ckpt: Checkpoint,
    photos_dir: str | Path,
    data_dir: str | None = None,
    head_samples: int = HEAD_SAMPLES,
) -> dict[str, Any]:
    """Fit the temperature, the garment head (none with head_samples 0) and the flag
    threshold; returns the calibration record."""
    val = validation_photos(photos_dir)
    features = features_of(ckpt, val.images)
    logits = logits_from(ckpt, features)
    photos_in, photos_out = photo_scores(logits, val)
    fm, n_fm = fm_slice(ckpt, data_dir)
    both = cat(photos_in, fm)
    temperature = fit_temperature(both.logits, both.sets)
    head = (
        fit_garment_head(*garment_head_data(ckpt, photos_dir, data_dir, head_samples))
        if head_samples
        else None
    )
    garment = garment_scores(ckpt, features, head, temperature)
    photos_in, photos_out = photo_scores(logits, val, garment)
    inside = val.in_class
    folders_in = tuple(f for f, i in zip(val.folders, inside.tolist(), strict=True) if i)
    threshold = per_type_threshold(garment[inside], folders_in)
    report = calibration_report(photos_in, photos_out, fm, temperature, threshold)
    report["confidence_auroc"] = auroc(
        photos_in.confidence(temperature), photos_out.confidence(temperature)
    )
    report["flagged_by_type"] = flagged_by_type(garment[inside], folders_in, threshold)
    report["flagged"]["synthetic_non_garments"] = float(
        (non_garment_scores(ckpt, temperature, head) < threshold).double().mean()
    )
    report["fitted_on"] = {
        "photo_validation_in_class": len(photos_in.logits),
        "fashion_mnist_train_last": n_fm,
        "garment_head_samples": head_samples,
    }
    if head is not None:
        report["garment_head"] = head
    return report


def validation_photos(photos_dirs: str | Path) -> PhotoSet:
    """The validation split of each comma-separated photo folder, one after the other."""
    return _split_photos(photos_dirs, 1)


def training_photos(photos_dirs: str | Path) -> PhotoSet:
    """The training split of each comma-separated photo folder, one after the other."""
    return _split_photos(photos_dirs, 0)


def _split_photos(photos_dirs: str | Path, part: int) -> PhotoSet:
    parts = []
    for folder in filter(None, str(photos_dirs).split(",")):
        photos = load_photos(folder)
        parts.append(photos.select(validation_split(photos)[part]))
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
    p.add_argument(
        "--head-samples",
        type=int,
        default=HEAD_SAMPLES,
        help="synthetic non-garments and Fashion-MNIST images the garment head is fitted on "
        "(half as many rendered as photos); 0: no head, the flag reads the top probability",
    )
    p.add_argument("--dry-run", action="store_true", help="print only, leave the metadata")
    args = p.parse_args(argv)
    if args.head_samples < 0:
        p.error(f"--head-samples cannot be negative, got {args.head_samples}")
    ckpt = load_checkpoint(args.checkpoint)
    report = calibrate(ckpt, args.photos, args.data_dir, args.head_samples)
    print(json.dumps({k: v for k, v in report.items() if k != "garment_head"}, indent=2))
    if not args.dry_run:
        update_metadata(args.checkpoint, calibration=report)
        print(f"calibration written to {args.checkpoint}'s metadata")
        from model.export import write_graphs  # the temperature is in the graph: export again

        for path in write_graphs(load_checkpoint(args.checkpoint)):
            print(f"wrote {path}")
    return report


if __name__ == "__main__":
    run("python -m model.calibrate", main)
