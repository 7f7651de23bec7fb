"""Knowledge distillation beside the set loss: the student also matches the teacher's softened
answers where it has them (Hinton et al. 2015, arXiv:1503.02531).

Per example i, with h_i = 1 where a teacher answer exists:
    loss_i = (1 - w h_i) set_loss_i + w h_i T^2 KL(softmax(t_i / T) || softmax(s_i / T)),
averaged over the batch; T^2 keeps the soft term's gradients on the set loss's scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from model.training.loss import in_set


@dataclass(frozen=True)
class Targets:
    """A batch's targets: (B, classes) bool label sets, and the teacher's (B, classes) logits
    with has_teacher (B,) saying which rows have one."""

    sets: Tensor
    teacher: Tensor
    has_teacher: Tensor

    def __len__(self) -> int:
        return len(self.sets)

    def hits(self, logits: Tensor) -> Tensor:
        """(B,) bool: the student's top class is in the set."""
        return in_set(logits.argmax(1), self.sets)


class DistilledSetLoss(nn.Module):
    """The set cross-entropy (label smoothing as nn.CrossEntropyLoss) mixed with distillation."""

    def __init__(self, weight: float, temperature: float, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.weight, self.temperature, self.label_smoothing = weight, temperature, label_smoothing

    def forward(self, logits: Tensor, targets: Targets) -> Tensor:
        log_p = logits.float().log_softmax(1)
        sets = targets.sets | ~targets.sets.any(1, keepdim=True)  # an empty set: any class
        nll = -log_p.masked_fill(~sets, -math.inf).logsumexp(1)
        if self.label_smoothing:
            nll = (1 - self.label_smoothing) * nll - self.label_smoothing * log_p.mean(1)
        t = self.temperature
        soft_teacher = (targets.teacher.float() / t).log_softmax(1)
        soft_student = (logits.float() / t).log_softmax(1)
        kl = (soft_teacher.exp() * (soft_teacher - soft_student)).sum(1) * t * t
        w = self.weight * targets.has_teacher.float()
        return ((1 - w) * nll + w * torch.where(targets.has_teacher, kl, 0.0)).mean()
