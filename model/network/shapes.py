"""d2l's ResNet-18 layer by layer as arithmetic: output shapes and parameter counts, no torch.

The summary route answers from this in the torch-free CPU image; tests/model/test_shapes.py
checks it against forward hooks on the real network (model.summary) for every depth and many
sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# The input sizes a summary is given for (here and at GET /model/summary): below 16 the stem and
# the four stages have nothing left to halve, above 512 a Fashion-MNIST network means nothing.
MIN_INPUT, MAX_INPUT = 16, 512

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerRow:
    """One layer's name (dotted path), type, output shape and own parameter count."""

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int


@dataclass(frozen=True)
class Layer:
    """A module: its type, its output shape from its input's (leaves), its children in the
    order they run (containers)."""

    type: str
    own_params: int = 0
    shape: Callable[[Shape], Shape] = lambda s: s
    children: tuple[tuple[str, Layer], ...] = ()
    branch: bool = False  # a shortcut: runs on its container's input, its output is added

    @property
    def params(self) -> int:
        return self.own_params + sum(child.params for _, child in self.children)


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> Layer:
    def shape(s: Shape) -> Shape:
        n, _, h, w = s
        return (n, cout, _out(h, kernel, stride, padding), _out(w, kernel, stride, padding))

    return Layer("Conv2d", cout * cin * kernel * kernel + cout, shape)


def batch_norm(c: int) -> Layer:
    return Layer("BatchNorm2d", 2 * c)


def residual(cin: int, cout: int, use_1x1conv: bool = False, strides: int = 1) -> Layer:
    # In forward order: conv1, bn1, conv2, bn2, then the shortcut's conv3.
    children = [
        ("conv1", conv(cin, cout, 3, strides, 1)),
        ("bn1", batch_norm(cout)),
        ("conv2", conv(cout, cout, 3, 1, 1)),
        ("bn2", batch_norm(cout)),
    ]
    if use_1x1conv:
        shortcut = conv(cin, cout, 1, strides)
        children.append(
            ("conv3", Layer(shortcut.type, shortcut.own_params, shortcut.shape, branch=True))
        )
    return Layer("Residual", children=tuple(children))


def _stage(cin: int, cout: int, first: bool) -> Layer:
    blocks = [residual(cout, cout)] if first else [residual(cin, cout, True, 2)]
    blocks.append(residual(cout, cout))
    return Layer("Sequential", children=tuple((str(i), b) for i, b in enumerate(blocks)))


def resnet18_layers(num_classes: int = 10, in_channels: int = 1) -> Layer:
    """The layer tree of model.network.net.resnet18, names and order as torch has them."""
    b1 = (
        conv(in_channels, 64, 7, 2, 3),
        batch_norm(64),
        Layer("ReLU"),
        Layer("MaxPool2d", 0, lambda s: (s[0], s[1], _out(s[2], 3, 2, 1), _out(s[3], 3, 2, 1))),
    )
    top = (
        Layer("Sequential", children=tuple((str(i), m) for i, m in enumerate(b1))),
        _stage(64, 64, True),
        _stage(64, 128, False),
        _stage(128, 256, False),
        _stage(256, 512, False),
        Layer("AdaptiveAvgPool2d", 0, lambda s: (s[0], s[1], 1, 1)),
        Layer("Flatten", 0, lambda s: (s[0], s[1] * s[2] * s[3])),
        Layer("Linear", 512 * num_classes + num_classes, lambda s: (s[0], num_classes)),
    )
    return Layer("Sequential", children=tuple((str(i), m) for i, m in enumerate(top)))


def layer_rows(
    root: Layer, input_size: int, in_channels: int = 1, depth: int = 1
) -> list[LayerRow]:
    """What model.summary.layer_summary reports for a (1, C, S, S) input: rows in the order the
    layers finish, for layers `depth` levels down and shallower leaves."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    rows: list[LayerRow] = []

    def run(layer: Layer, name: str, level: int, shape: Shape) -> Shape:
        given = shape
        for child_name, child in layer.children:
            path = f"{name}.{child_name}" if name else child_name
            out = run(child, path, level + 1, given if child.branch else shape)
            shape = shape if child.branch else out
        if not layer.children:
            shape = layer.shape(shape)
        if level == depth or (0 < level < depth and not layer.children):
            rows.append(LayerRow(name, layer.type, shape, layer.params))
        return shape

    run(root, "", 0, (1, in_channels, input_size, input_size))
    return rows
