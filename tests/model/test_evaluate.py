"""The evaluation CLI's pieces: the confusion matrix by hand, the report of a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from model.data.fashion_mnist import Split
from model.evaluate import confusion_matrix, evaluate
from model.images.silhouette import to_model_input
from model.network.checkpoint import load_checkpoint


def test_confusion_matrix_by_hand() -> None:
    labels, preds = torch.tensor([0, 0, 1, 2, 2, 2]), torch.tensor([0, 1, 1, 2, 0, 2])
    assert confusion_matrix(labels, preds, 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_the_report_agrees_with_the_networks_own_argmax(
    tiny_checkpoint: Path, test_images: Split
) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    split = Split(test_images.images[:64], test_images.labels[:64])
    report = evaluate(ckpt, split, batch_size=16)
    with torch.no_grad():
        x = to_model_input(split.images, ckpt.input_size, ckpt.mean, ckpt.std)
        preds = ckpt.model.eval()(x).argmax(1)
    assert report["accuracy"] == float((preds == split.labels).double().mean())
    assert report["images"] == 64 and sum(map(sum, report["confusion_matrix"])) == 64
    per_class = report["per_class_accuracy"]
    assert set(per_class) == set(ckpt.class_names) and all(0 <= v <= 1 for v in per_class.values())
