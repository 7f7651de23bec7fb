"""Evaluate a checkpoint: Fashion-MNIST test accuracy (per class, confusion matrix) and, where the
labelled clothing photos are, their validation split: accuracy per garment type, a contact sheet
of the mistakes, calibration error and how well confidence separates "none of the ten"."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from model.calibrate import (
    Scored,
    as_sets,
    calibration_report,
    features_of,
    garment_scores,
    logits_from,
    logits_of,
    photo_scores,
)
from model.cli import Parser, run
from model.data.fashion_mnist import Split, load_split
from model.data.photos import (
    DEFAULT_PHOTO_DIR,
    PhotoSet,
    load_photos,
    scored_accuracy,
    validation_split,
)
from model.images.decode import decode_image
from model.images.silhouette import naive_squash_28, photo_to_fashion_mnist, to_model_input
from model.network.checkpoint import Checkpoint, load_checkpoint
from model.network.device import resolve_device
from model.training.batches import BatchLoader


@torch.no_grad()
def predict(
    model: nn.Module,
    split: Split,
    input_size: int,
    mean: float,
    std: float,
    batch_size: int = 1024,
) -> Tensor:
    """Top-1 class of every image in split, in order, on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    loader = BatchLoader(
        split, torch.arange(len(split)), batch_size, input_size, mean=mean, std=std
    )
    return torch.cat([model(x.to(device)).argmax(1).cpu() for x, _ in loader])


def confusion_matrix(labels: Tensor, preds: Tensor, num_classes: int) -> Tensor:
    """(true, predicted) counts."""
    flat = labels.to(torch.int64) * num_classes + preds.to(torch.int64)
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def evaluate(ckpt: Checkpoint, split: Split, batch_size: int = 1024) -> dict[str, Any]:
    """Accuracy report of ckpt on split."""
    preds = predict(ckpt.model, split, ckpt.input_size, ckpt.mean, ckpt.std, batch_size)
    labels = split.labels.cpu()
    cm = confusion_matrix(labels, preds, len(ckpt.class_names))
    per_class = (cm.diag().double() / cm.sum(1).clamp(min=1)).tolist()
    return {
        "accuracy": float((preds == labels).double().mean()),
        "images": len(split),
        "per_class_accuracy": dict(zip(ckpt.class_names, per_class, strict=True)),
        "confusion_matrix": cm.tolist(),
        "checkpoint_sha256": ckpt.meta["weights_sha256"],
        "input_size": ckpt.input_size,
    }


@torch.no_grad()
def evaluate_photos(ckpt: Checkpoint, folder: Path) -> dict[str, Any]:
    """Accuracy on labelled photos (folder/labels.csv: file,label), with and without the
    service's photo preprocessing; "plain" only squashes each photo to 28x28 grayscale."""
    with open(folder / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    pipelines = {"preprocessed": photo_to_fashion_mnist, "plain": naive_squash_28}
    device = next(ckpt.model.parameters()).device
    items = []
    for row in rows:
        img = decode_image((folder / row["file"]).read_bytes())
        item: dict[str, Any] = {"file": row["file"], "label": int(row["label"])}
        for name, fn in pipelines.items():
            x = to_model_input(
                torch.from_numpy(fn(img))[None], ckpt.input_size, ckpt.mean, ckpt.std
            )
            item[name] = int(ckpt.model(x.to(device)).argmax(1))
        items.append(item)

    def accuracy(subset: list[dict[str, Any]], name: str) -> float:
        return sum(i[name] == i["label"] for i in subset) / max(len(subset), 1)

    per_class = {}
    for class_id, cls in enumerate(ckpt.class_names):
        subset = [i for i in items if i["label"] == class_id]
        if subset:
            per_class[cls] = {"n": len(subset), **{n: accuracy(subset, n) for n in pipelines}}
    return {
        "photos": len(items),
        "accuracy": {name: accuracy(items, name) for name in pipelines},
        "per_class": per_class,
        "items": items,
    }


def plot_confusion(report: dict[str, Any], class_names: list[str], path: Path) -> None:
    """Confusion matrix as a labelled heat map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = torch.tensor(report["confusion_matrix"]).numpy()
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = cm.max() / 2
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            color = "white" if cm[i, j] > threshold else "black"
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7, color=color)
    ax.set_title(f"test accuracy {report['accuracy']:.4f} on {report['images']} images")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: print and save the test-set report of a checkpoint."""
    p = Parser(prog="python -m model.evaluate", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="the .safetensors (or .json) file")
    p.add_argument("--data-dir", help="folder with the idx files")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--test-subset", type=int, help="first N test images only")
    p.add_argument("--out", default="runs/eval", help="folder for report.json and confusion.png")
    p.add_argument(
        "--photos",
        help="instead: a folder of labelled photos (labels.csv: file,label), scored with and "
        "without the service's preprocessing",
    )
    p.add_argument(
        "--photo-dir",
        default=str(DEFAULT_PHOTO_DIR),
        help="clothing photos with class sets (labels.csv): their validation split is scored too "
        "when the folder exists; 'none' to skip",
    )
    args = p.parse_args(argv)

    ckpt = load_checkpoint(args.checkpoint, resolve_device(args.device))
    out = Path(args.out)
    if args.photos:
        return _photos_report(ckpt, Path(args.photos), out)
    split = load_split("test", args.data_dir).subset(args.test_subset)
    report = evaluate(ckpt, split, args.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(report, ckpt.class_names, out / "confusion.png")
    print(f"test accuracy {report['accuracy']:.4f} on {report['images']} images")
    for name, acc in report["per_class_accuracy"].items():
        print(f"  {name:<12} {acc:.4f}")
    photo_dir = Path(args.photo_dir)
    if args.photo_dir != "none" and (photo_dir / "labels.csv").is_file():
        report["photo_validation"] = evaluate_photo_validation(ckpt, photo_dir, split, out)
        _print_photo_validation(report["photo_validation"])
    elif args.photo_dir != "none":
        print(f"no labelled photos in {photo_dir}: photo validation skipped")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {out / 'report.json'}, confusion matrix: {out / 'confusion.png'}")
    return report


def evaluate_photo_validation(
    ckpt: Checkpoint, folder: Path, test: Split, out: Path
) -> dict[str, Any]:
    """Accuracy per garment type on the photos' validation split, calibration (photos and the
    Fashion-MNIST test set, before and after the checkpoint's temperature), the none-of-the-ten
    AUROC and flag rates, and a contact sheet of the mistakes."""
    photos = load_photos(folder)
    val = photos.select(validation_split(photos)[1])
    features = features_of(ckpt, val.images)
    logits = logits_from(ckpt, features)
    garment = garment_scores(ckpt, features, ckpt.garment_head, ckpt.temperature)
    scored, outside = photo_scores(logits, val, garment)
    fm = Scored(logits_of(ckpt, test.images), as_sets(test.labels, ckpt.num_classes))
    report = {
        "photos": len(val),
        "accuracy": scored_accuracy(val, logits.argmax(1)),
        "calibration": calibration_report(
            scored, outside, fm, ckpt.temperature, ckpt.flag_threshold
        ),
        "contact_sheet": str(out / "photo-mistakes.png"),
    }
    probs = (logits / ckpt.temperature).softmax(1)
    contact_sheet(folder, val, probs, ckpt.class_names, out / "photo-mistakes.png")
    return report


def contact_sheet(
    folder: Path,
    photos: PhotoSet,
    probs: Tensor,
    class_names: list[str],
    path: Path,
    limit: int = 120,
) -> int:
    """A PNG of the in-class photos predicted wrong: each photo, the 28x28 the network saw, and
    "predicted (confidence)" over "accepted classes". Returns how many it shows."""
    from PIL import Image, ImageDraw

    pred = probs.argmax(1)
    wrong = [
        i
        for i in range(len(photos))
        if photos.label_sets[i].any() and not photos.label_sets[i, pred[i]]
    ][:limit]
    cols, tile_w, tile_h, side = 6, 200, 100, 72
    sheet = Image.new("RGB", (cols * tile_w, max(1, -(-len(wrong) // cols)) * tile_h), "white")
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(wrong):
        x, y = (k % cols) * tile_w, (k // cols) * tile_h
        with Image.open(folder / photos.files[i]) as photo:
            thumb = photo.convert("RGB")
            thumb.thumbnail((side, side))
        sheet.paste(thumb, (x, y))
        seen = Image.fromarray(photos.images[i].numpy()).resize((side, side), Image.NEAREST)
        sheet.paste(seen.convert("RGB"), (x + side + 4, y))
        accepted = "|".join(class_names[c] for c in photos.label_sets[i].nonzero().flatten())
        draw.text((x, y + side + 2), f"{class_names[pred[i]]} ({probs[i, pred[i]]:.2f})", "red")
        draw.text((x, y + side + 13), accepted[:32], "darkgreen")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return len(wrong)


def _print_photo_validation(report: dict[str, Any]) -> None:
    acc, cal = report["accuracy"], report["calibration"]
    print(f"photo validation split ({report['photos']} photos), top-1 per type:")
    for name, value in acc.items():
        print(f"  {name:<12} {value:.3f}")
    before, after = cal["ece_before"], cal["ece_after"]
    print(
        f"ECE at T=1 / T={cal['temperature']:.3f}: photos {before['photos']:.3f} / "
        f"{after['photos']:.3f}, Fashion-MNIST test {before['fashion_mnist']:.3f} / "
        f"{after['fashion_mnist']:.3f}; none-of-the-ten AUROC {cal['none_of_the_ten_auroc']:.3f}"
    )
    if "flagged" in cal:
        f = cal["flagged"]
        print(
            f"flagged below {cal['flag_threshold']:.3f}: {f['in_class']:.3f} of in-class photos, "
            f"{f['none_of_the_ten']:.3f} of none-of-the-ten photos"
        )
    print(f"contact sheet of the mistakes: {report['contact_sheet']}")


def _photos_report(ckpt: Checkpoint, folder: Path, out: Path) -> dict[str, Any]:
    report = evaluate_photos(ckpt, folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "photos.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'class':<12} {'n':>3} {'preprocessed':>13} {'plain':>7}")
    for cls, r in report["per_class"].items():
        print(f"{cls:<12} {r['n']:>3} {r['preprocessed']:>13.2f} {r['plain']:>7.2f}")
    acc = report["accuracy"]
    print(f"{'all':<12} {report['photos']:>3} {acc['preprocessed']:>13.3f} {acc['plain']:>7.3f}")
    print(f"report: {out / 'photos.json'}")
    return report


if __name__ == "__main__":
    run("python -m model.evaluate", main)
