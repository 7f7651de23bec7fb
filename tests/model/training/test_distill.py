"""The distillation loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from model.training.distill import DistilledSetLoss, Targets
from model.training.loss import SetCrossEntropy


def softmax(xs: list[float], t: float = 1.0) -> list[float]:
    e = [math.exp(x / t) for x in xs]
    return [v / sum(e) for v in e]


def test_the_loss_by_hand() -> None:
    student = [[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]]
    teacher = [[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]]
    sets = torch.tensor([[True, True, False], [False, False, True]])
    w, t = 0.7, 4.0
    # Row 0 has a teacher: a set {0, 1} and the softened KL. Row 1 has none: cross-entropy alone.
    p0 = softmax(student[0])
    nll0 = -math.log(p0[0] + p0[1])
    q, s = softmax(teacher[0], t), softmax(student[0], t)
    kl0 = sum(qi * math.log(qi / si) for qi, si in zip(q, s, strict=True)) * t * t
    nll1 = -math.log(softmax(student[1])[2])
    expected = ((1 - w) * nll0 + w * kl0 + nll1) / 2
    loss = DistilledSetLoss(w, t)(
        torch.tensor(student),
        Targets(sets, torch.tensor(teacher), torch.tensor([True, False])),
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_without_a_teacher_it_is_the_set_loss(smoothing: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 10, generator=gen)
    sets = torch.rand(8, 10, generator=gen) < 0.3
    sets[:, 0] |= ~sets.any(1)  # no empty sets: those are outlier exposure's, not this loss's
    targets = Targets(sets, torch.randn(8, 10, generator=gen), torch.zeros(8, dtype=torch.bool))
    got = DistilledSetLoss(0.7, 4.0, smoothing)(logits, targets)
    torch.testing.assert_close(got, SetCrossEntropy(smoothing)(logits, sets))


def test_the_student_moves_toward_the_teacher() -> None:
    logits = torch.zeros(1, 3, requires_grad=True)
    targets = Targets(
        torch.tensor([[True, True, True]]), torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([True])
    )
    DistilledSetLoss(1.0, 2.0)(logits, targets).backward()
    assert logits.grad is not None and logits.grad[0, 0] < 0 < logits.grad[0, 1]
    assert targets.hits(torch.tensor([[0.0, 1.0, 0.0]])).tolist() == [True]
