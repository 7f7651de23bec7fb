"""The statistics of calibration and of the none-of-the-classes flag: the set NLL and the
temperature that minimises it, expected calibration error, AUROC, and the flag's thresholds."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from model.training.loss import SetCrossEntropy

ECE_BINS = 15
# The share of in-class validation photos the "none of the ten" flag may wrongly raise.
FLAG_BUDGET = 0.05


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
