"""Shared fixtures: small checkpoints and a short real training run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import save_checkpoint
from model.data import CLASS_NAMES, MEAN, STD
from model.net import init_xavier, resnet18

# Small enough that the real CLI trains and evaluates in seconds on two cores.
TINY_TRAIN = 512
TINY_TEST = 256


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight checkpoint at the native 28x28 input size."""
    torch.manual_seed(0)
    model = resnet18()
    init_xavier(model)
    path = tmp_path_factory.mktemp("ckpt") / "tiny"
    return save_checkpoint(path, model, class_names=CLASS_NAMES, input_size=28, mean=MEAN, std=STD)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Output folder of `python -m model.train` run for 1 epoch on 512 real images."""
    from model.train import main

    out = tmp_path_factory.mktemp("run")
    main(
        [
            "--epochs=1",
            "--resize=28",
            "--batch-size=64",
            f"--train-subset={TINY_TRAIN}",
            f"--test-subset={TINY_TEST}",
            f"--out={out}",
            "--no-progress",
        ]
    )
    return out
