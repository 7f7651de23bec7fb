import pytest

from model.network.net import resnet18
from model.network.shapes import layer_rows, resnet18_layers
from model.summary import layer_summary

SIZES = [16, 17, 28, 31, 32, 33, 40, 63, 96, 97, 127, 224, 255, 511, 512]


@pytest.mark.slow  # forward hooks on every input size
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize(("num_classes", "in_channels"), [(10, 1), (7, 3)])
def test_arithmetic_rows_equal_forward_hooks(
    depth: int, num_classes: int, in_channels: int
) -> None:
    net = resnet18(num_classes=num_classes, in_channels=in_channels)
    tree = resnet18_layers(num_classes, in_channels)
    assert tree.params == sum(p.numel() for p in net.parameters())
    for size in SIZES:
        expected = layer_summary(net, size, in_channels, depth)
        assert layer_rows(tree, size, in_channels, depth) == expected, f"size {size}"


def test_depth_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        layer_rows(resnet18_layers(), 28, depth=0)
