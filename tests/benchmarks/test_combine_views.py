"""The view-combination table: its ends are each view alone, and a wrong mix is seen."""

from __future__ import annotations

from pathlib import Path

import torch

from benchmarks.combine_views import probabilities, table, validation_views
from model.data.fashion_mnist import CLASS_NAMES
from model.data.photos import scored_accuracy
from model.network.checkpoint import load_checkpoint, save_checkpoint
from model.network.net import init_xavier, resnet18
from tests.helpers import write_photo_folder


def test_the_ends_of_the_table_are_each_view_alone(tiny_checkpoint: Path, tmp_path: Path) -> None:
    photos = str(write_photo_folder(tmp_path / "photos", per_folder=8))
    torch.manual_seed(1)
    net = resnet18()
    init_xavier(net)
    path = save_checkpoint(tmp_path / "photo", net, class_names=CLASS_NAMES, input_size=32,
                           mean=0.5, std=0.25, view="photo")  # fmt: skip
    silhouette, photo = load_checkpoint(tiny_checkpoint), load_checkpoint(path)
    rows = table(silhouette, photo, photos, None)
    sil_set, view_set = validation_views(photos, 32)
    alone = {
        0.0: probabilities(silhouette, sil_set.images),
        1.0: probabilities(photo, view_set.images),
    }
    for w, probs in alone.items():
        expected = scored_accuracy(sil_set, torch.from_numpy(probs.argmax(1)))
        row = next(r for r in rows if r["w"] == w)
        assert {k: row[k] for k in expected} == expected
    assert [r["w"] for r in rows] == sorted(r["w"] for r in rows) and len(rows) == 21
