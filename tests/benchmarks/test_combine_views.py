"""The view-combination table: its ends are each view alone, and a wrong mix is seen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.combine_views import DESIGNS, FOOTWEAR, probabilities, table, validation_views
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


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_every_design_is_the_silhouette_at_w_0(design: str) -> None:
    rng = np.random.default_rng(0)
    p_photo, p_sil = rng.dirichlet(np.ones(10), 200), rng.dirichlet(np.ones(10), 200)
    mixed = DESIGNS[design](p_photo, p_sil, 0.0)
    assert (mixed.argmax(1) == p_sil.argmax(1)).all()


def test_footwear_by_silhouette_keeps_the_photo_views_footwear_mass() -> None:
    rng = np.random.default_rng(1)
    p_photo, p_sil = rng.dirichlet(np.ones(10), 200), rng.dirichlet(np.ones(10), 200)
    mixed = DESIGNS["footwear-by-silhouette"](p_photo, p_sil, 1.0)
    others = [c for c in range(10) if c not in FOOTWEAR]
    np.testing.assert_allclose(mixed[:, others], p_photo[:, others])
    np.testing.assert_allclose(mixed[:, FOOTWEAR].sum(1), p_photo[:, FOOTWEAR].sum(1))
    share = mixed[:, FOOTWEAR] / mixed[:, FOOTWEAR].sum(1, keepdims=True)
    np.testing.assert_allclose(share, p_sil[:, FOOTWEAR] / p_sil[:, FOOTWEAR].sum(1, keepdims=True))
