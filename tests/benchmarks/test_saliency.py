"""The deletion test of the served saliency on a sample, and that the test can fail."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.saliency import TARGET, deletion_ratio, served_forward
from model.data.fashion_mnist import load_split
from model.network.checkpoint_info import SHIPPED_CHECKPOINT
from model.network.saliency import explain

pytestmark = pytest.mark.slow  # the deletion benchmark

SAMPLE = 200


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return load_split("test").subset(SAMPLE).images.numpy()


def test_blanking_the_salient_pixels_hurts_at_least_twice_as_much_as_random(
    sample: np.ndarray,
) -> None:
    forward, _ = served_forward(str(SHIPPED_CHECKPOINT))
    figures = deletion_ratio(forward, sample)
    assert figures["ratio"] >= TARGET, figures


@pytest.mark.parametrize("kind", ["random", "inverted"])
def test_a_saliency_that_means_nothing_fails_the_bar(sample: np.ndarray, kind: str) -> None:
    """Random maps, or occlusion's turned upside down, do not reach the bar."""
    forward, _ = served_forward(str(SHIPPED_CHECKPOINT))
    _, occlusion = explain(forward, sample)
    maps = np.random.default_rng(7).random(sample.shape) if kind == "random" else 1 - occlusion
    assert deletion_ratio(forward, sample, saliency=maps)["ratio"] < TARGET
