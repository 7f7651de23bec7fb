"""Calibration's statistics by hand: the set NLL, the temperature, ECE, AUROC, the flag."""

import math

import pytest
import torch

from model.training.scores import (
    auroc,
    expected_calibration_error,
    fit_temperature,
    flag_threshold,
    set_nll,
)


def test_fit_temperature_recovers_the_temperature_that_made_the_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20_000, 10, generator=gen) * 3
    labels = torch.multinomial((logits / 2.5).softmax(1), 1, generator=gen).squeeze(1)
    sets = torch.nn.functional.one_hot(labels, 10).bool()
    fitted = fit_temperature(logits, sets)
    assert fitted == pytest.approx(2.5, rel=0.05)
    assert set_nll(logits, sets, fitted) < min(set_nll(logits, sets, t) for t in (1.0, 2.0, 3.0))


def test_set_nll_by_hand() -> None:
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0]]))  # probabilities 1/6, 2/6, 3/6
    sets = torch.tensor([[False, True, True]])
    assert set_nll(logits, sets) == pytest.approx(-math.log(5 / 6))
    # At T = 2 the probabilities are proportional to 1, sqrt 2, sqrt 3.
    root = 1 + math.sqrt(2) + math.sqrt(3)
    expected = -math.log((math.sqrt(2) + math.sqrt(3)) / root)
    assert set_nll(logits, sets, 2.0) == pytest.approx(expected)


def test_ece_by_hand() -> None:
    confidence = torch.tensor([0.9, 0.9, 0.6, 0.6])
    correct = torch.tensor([True, False, True, True])
    # Two bins, half the photos each: |0.5 - 0.9| / 2 + |1.0 - 0.6| / 2.
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.4)
    assert expected_calibration_error(torch.tensor([0.75] * 4), correct) == pytest.approx(0.0)


def test_auroc_by_hand() -> None:
    assert auroc(torch.tensor([0.9, 0.8]), torch.tensor([0.85, 0.1])) == pytest.approx(0.75)
    assert auroc(torch.tensor([0.5]), torch.tensor([0.5])) == pytest.approx(0.5)


@pytest.mark.parametrize("n", [1, 19, 20, 21, 100, 617])
def test_the_flag_raises_at_most_five_percent_of_in_class_photos(n: int) -> None:
    confidence = torch.rand(n, generator=torch.Generator().manual_seed(n))
    threshold = flag_threshold(confidence)
    flagged = int((confidence < threshold).sum())
    assert flagged <= 0.05 * n
    assert flagged == math.floor(0.05 * n)  # and no fewer than the budget allows
