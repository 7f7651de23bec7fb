import pytest
import torch
from torch import nn

from model.network.net import Residual, fold_batch_norm, resnet18
from tests.helpers import SEED_SHAPES_224


def test_parameter_count_matches_d2l() -> None:
    assert sum(p.numel() for p in resnet18().parameters()) == 11_178_378


def test_top_level_shapes_match_the_seed() -> None:
    x = torch.zeros(1, 1, 224, 224)
    seen = []
    with torch.no_grad():
        for layer in resnet18().eval():
            x = layer(x)
            seen.append((type(layer).__name__, tuple(x.shape)))
    assert seen == SEED_SHAPES_224


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (Residual(3, 3), (4, 3, 6, 6)),
        (Residual(3, 6, use_1x1conv=True, strides=2), (4, 6, 3, 3)),
    ],
)
def test_residual_shapes(block: Residual, expected: tuple[int, ...]) -> None:
    assert tuple(block(torch.rand(4, 3, 6, 6)).shape) == expected


@pytest.mark.parametrize(("classes", "channels"), [(10, 1), (5, 3)])
def test_head_and_stem_follow_arguments(classes: int, channels: int) -> None:
    out = resnet18(num_classes=classes, in_channels=channels).eval()(
        torch.rand(2, channels, 28, 28)
    )
    assert out.shape == (2, classes)


def test_folding_batch_norm_keeps_outputs_and_removes_every_bn() -> None:
    torch.manual_seed(0)
    net = resnet18()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # statistics a trained network could have
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    net.eval()
    folded = fold_batch_norm(net)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net(x), atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 17  # a copy was folded
