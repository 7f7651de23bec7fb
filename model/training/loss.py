"""Learning from label sets: the loss and the hit test that training and calibration share.

A photo may be labelled with a set of classes ("5|7|9": some footwear). A prediction is right when
it is in the set, and the loss is the set's total probability, -log sum_{c in set} p_c.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class SetCrossEntropy(nn.Module):
    """Cross-entropy against a set of acceptable classes: -log sum_{c in set} p_c.

    Targets are class ids (B,) or bool sets (B, classes). A singleton set gives ordinary
    cross-entropy, so "some footwear" teaches footwear without inventing which kind. Label
    smoothing mixes in the mean -log p_c over all classes, as nn.CrossEntropyLoss does.

    An empty set (none of the ten classes: a hat, a gradient) is trained towards the uniform
    answer, -mean_c log p_c, weighted by `outlier_weight` (outlier exposure, Hendrycks et al.
    2019); with the weight 0 such rows add nothing.
    """

    def __init__(self, label_smoothing: float = 0.0, outlier_weight: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.outlier_weight = outlier_weight

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        if targets.dtype != torch.bool:
            return F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing)
        log_p = logits.float().log_softmax(1)
        inside = targets.any(1)
        # An empty set's row is computed as "any class" (finite, so no NaN gradient) and dropped.
        sets = targets | ~inside.unsqueeze(1)
        nll = -log_p.masked_fill(~sets, -math.inf).logsumexp(1)
        if self.label_smoothing:
            nll = (1 - self.label_smoothing) * nll - self.label_smoothing * log_p.mean(1)
        uniform = -log_p.mean(1) * self.outlier_weight
        return torch.where(inside, nll, uniform).mean()


class GarmentLoss(nn.Module):
    """Garment or not, from the network's pooled features, through a linear probe trained beside
    it: binary cross-entropy against "the target is a class or a non-empty set", times `weight`.

    It shapes the features model.calibrate later fits the served garment head on (the probe is
    not kept). `hook` is a forward pre-hook for the network's last Linear: it keeps that layer's
    input, the pooled features of the batch just run, for the loss to read.
    """

    def __init__(self, features: int, weight: float) -> None:
        super().__init__()
        self.probe = nn.Linear(features, 1)
        self.weight = weight
        self.features: Tensor | None = None

    def hook(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self.features = args[0]

    def forward(self, targets: Tensor) -> Tensor:
        if self.features is None:
            raise RuntimeError("GarmentLoss.hook is not on the network's last Linear")
        garment = targets.any(1) if targets.dtype == torch.bool else torch.ones_like(targets).bool()
        logit = self.probe(self.features.float()).squeeze(1)
        return self.weight * F.binary_cross_entropy_with_logits(logit, garment.float())


def in_set(predictions: Tensor, sets: Tensor) -> Tensor:
    """(N,) bool: each predicted class id is in its (N, classes) bool set."""
    return sets.gather(1, predictions.view(-1, 1).to(sets.device)).squeeze(1)
