import pytest
import torch

from model.data.fashion_mnist import load_split
from model.images.silhouette import to_model_input
from model.network.net import init_xavier, resnet18
from model.training.config import TrainConfig
from model.training.steps import lr_at, make_stepper


def test_one_sgd_step_lowers_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    net = resnet18()
    init_xavier(net)
    split = load_split("train").subset(64)
    x, y = to_model_input(split.images, 28, 0.286, 0.353), split.labels
    stepper = make_stepper(net, TrainConfig(), torch.device("cpu"))
    before, _ = stepper(x, y)
    after, _ = stepper(x, y)  # returns the loss at the weights the first step produced
    assert after < before


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        ("constant", 0.5, 0.1),
        ("cosine", 0.0, 0.1),
        ("cosine", 0.5, 0.05),
        ("cosine", 1.0, 0.0),
        ("onecycle", 0.0, 0.1 / 25),
        ("onecycle", 0.3, 0.1),
        ("onecycle", 1.0, 0.1 / 25e4),
    ],
)
def test_lr_schedules(schedule: str, at: float, expected: float) -> None:
    cfg = TrainConfig(lr=0.1, schedule=schedule)
    assert lr_at(int(at * 1000), 1000, cfg) == pytest.approx(expected, abs=1e-9)
