"""What an epoch reports: d2l's quantities summed over the processes, and the curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Training curves like d2l's plot: train loss, train acc and test acc per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    ax.plot(epochs, [h["train_acc"] for h in history], "--", label="train acc")
    ax.plot(epochs, [h["test_acc"] for h in history], "-.", label="test acc")
    ax.set_xlabel("epoch")
    ax.set_xlim(0.5, max(epochs) + 0.5)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def epoch_record(
    epoch: int,
    lr: float,
    trained: tuple[float, float, int, float],
    tested: tuple[int, int],
    world: int,
) -> dict[str, Any]:
    """The epoch's metrics line, summed over all ranks."""
    loss, acc, seen, seconds = trained
    totals = torch.tensor([loss * seen, acc * seen, seen, *tested, seconds], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(totals)
    loss_sum, correct_train, seen_all, correct, total, sec_sum = totals.tolist()
    return {
        "epoch": epoch,
        "train_loss": loss_sum / seen_all,
        "train_acc": correct_train / seen_all,
        "test_acc": correct / total,
        # Each rank trains in parallel, so wall time is the mean of their times.
        "examples_per_sec": seen_all / (sec_sum / world),
        "lr": lr,
        "seconds": sec_sum / world,
    }
