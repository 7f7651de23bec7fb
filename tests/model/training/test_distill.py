"""The distillation loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from model.training.distill import DistilledSetLoss, Targets
from model.training.loss import SetCrossEntropy
from model.training.teacher import with_footwear_shares


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


def test_footwear_shares_split_the_teachers_footwear_mass_by_hand() -> None:
    logits = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 2.0, 0.0, 2.0]] * 2)
    sets = torch.zeros(2, 10, dtype=torch.bool)
    sets[0, [5, 7, 9]] = True  # labelled "some footwear"
    sets[1, 7] = True  # labelled sneaker: its answer stays the teacher's
    shares = {"f/a.jpg": torch.tensor([0.5, 0.25, 0.25])}  # the footwear-labelled photo's
    out = with_footwear_shares(logits, sets, shares, ["f/a.jpg", "f/b.jpg"])
    p = softmax(logits[0].tolist())
    foot = p[5] + p[7] + p[9]
    expected = [*p[:5], foot * 0.5, p[6], foot * 0.25, p[8], foot * 0.25]
    torch.testing.assert_close(torch.softmax(out[0], 0), torch.tensor(expected))
    torch.testing.assert_close(out[1], logits[1])
