"""Occlusion saliency: the patches, the blanked copies, the map, the deletion test's blanking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.network import saliency
from model.network.saliency import (
    MASKS,
    blank,
    occluded_copies,
    occlusion_masks,
    occlusion_saliency,
)


@pytest.mark.parametrize(("size", "patch", "stride"), [(28, 7, 3), (28, 5, 2), (10, 4, 4)])
def test_patches_cover_every_pixel_and_keep_their_size(size: int, patch: int, stride: int) -> None:
    masks = occlusion_masks(size, patch, stride)
    assert masks.any(axis=0).all()
    assert (masks.sum(axis=(1, 2)) == patch * patch).all()
    assert len({m.tobytes() for m in masks}) == len(masks)


def test_the_served_patches_are_64() -> None:
    assert MASKS.shape == (64, 28, 28)


def test_occluded_copies_blank_only_their_patch() -> None:
    image = np.random.default_rng(0).integers(1, 256, (28, 28), dtype=np.uint8)
    copies = occluded_copies(image)
    assert (copies[MASKS] == 0).all()
    assert (copies[~MASKS] == np.broadcast_to(image, copies.shape)[~MASKS]).all()


def fake_forward(weights: np.ndarray) -> saliency.Forward:
    """A 'network' whose class 0 probability is the weighted share of light pixels kept: the
    evidence sits exactly where `weights` is high."""

    def forward(images: np.ndarray) -> np.ndarray:
        score = (images.astype(np.float32) / 255 * weights).sum(axis=(1, 2)) / weights.sum()
        return np.stack([score, 1 - score], axis=1)

    return forward


def test_the_map_points_at_the_evidence_and_is_zero_on_black() -> None:
    image = np.zeros((28, 28), dtype=np.uint8)
    image[8:20, 8:20] = 255
    weights = np.full((28, 28), 0.01, dtype=np.float32)
    weights[8:12, 15:20] = 1.0  # the evidence: one corner of the garment
    probs, maps = saliency.explain(fake_forward(weights), image[None])
    assert probs.shape == (1, 2) and maps.shape == (1, 28, 28)
    m = maps[0]
    assert m.max() == pytest.approx(1.0) and m.min() >= 0
    peak = np.unravel_index(np.argmax(m), m.shape)
    assert 8 <= peak[0] < 12 and 15 <= peak[1] < 20
    # Where every patch covering a pixel is black already, nothing changes.
    assert m[26:, :].max() == 0 and m[:, :2].max() == 0


def test_a_map_with_no_fall_is_all_zero() -> None:
    probs = np.tile([[0.9, 0.1]], (1 + len(MASKS), 1))
    assert (occlusion_saliency(probs) == 0).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 1.0))
def test_blank_blanks_exactly_the_highest_scoring_share(seed: int, fraction: float) -> None:
    rng = np.random.default_rng(seed)
    images = rng.integers(1, 256, (3, 28, 28), dtype=np.uint8)
    scores = rng.random((3, 28, 28))
    out = blank(images, scores, fraction)
    k = round(fraction * 784)
    for x, s, o in zip(images, scores, out, strict=True):
        assert (o == 0).sum() == k
        if 0 < k < 784:
            # Every blanked pixel scores at least as high as every kept one.
            assert s[o == 0].min() >= s[o != 0].max()
        assert (o[o != 0] == x[o != 0]).all()
