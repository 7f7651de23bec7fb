"""Per-layer output shapes and parameter counts, like d2l's printout of the network."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from model.cli import Parser, run
from model.network.net import resnet18
from model.network.shapes import MAX_INPUT, MIN_INPUT, LayerRow


def _depth(name: str) -> int:
    return name.count(".") + 1


@torch.no_grad()
def layer_summary(
    model: nn.Module, input_size: int, in_channels: int = 1, depth: int = 1
) -> list[LayerRow]:
    """Rows in forward order for modules `depth` levels down and shallower leaves; batch of 1."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    chosen = [
        (name, module)
        for name, module in model.named_modules()
        if name
        and (
            _depth(name) == depth
            or (_depth(name) < depth and next(module.children(), None) is None)
        )
    ]
    rows: list[LayerRow] = []
    hooks = []
    for name, module in chosen:

        def hook(mod: nn.Module, _inp: object, out: torch.Tensor, name: str = name) -> None:
            rows.append(
                LayerRow(
                    name=name,
                    type=type(mod).__name__,
                    output_shape=tuple(out.shape),
                    params=sum(p.numel() for p in mod.parameters()),
                )
            )

        hooks.append(module.register_forward_hook(hook))
    param = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        model(
            torch.zeros(
                1, in_channels, input_size, input_size, device=param.device, dtype=param.dtype
            )
        )
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def format_table(rows: list[LayerRow], total_params: int) -> str:
    """The rows as a fixed-width text table with a total line."""
    lines = [f"{'layer':<10} {'type':<18} {'output shape':<22} {'params':>12}"]
    for r in rows:
        shape = "(" + ", ".join(map(str, r.output_shape)) + ")"
        lines.append(f"{r.name:<10} {r.type:<18} {shape:<22} {r.params:>12,}")
    lines.append(f"{'total':<10} {'':<18} {'':<22} {total_params:>12,}")
    return "\n".join(lines)


def input_size(text: str) -> int:
    """An --input-size value, checked against MIN_INPUT..MAX_INPUT."""
    size = int(text)
    if not MIN_INPUT <= size <= MAX_INPUT:
        raise argparse.ArgumentTypeError(f"must be from {MIN_INPUT} to {MAX_INPUT}, got {size}")
    return size


def main(argv: list[str] | None = None) -> None:
    """Print the summary table of d2l's ResNet-18 (or a checkpoint's) for an input size."""
    p = Parser(prog="python -m model.summary", description=main.__doc__)
    p.add_argument(
        "--input-size", type=input_size, default=224, help="height and width of the input"
    )
    p.add_argument("--depth", type=int, default=1, help="1 = top-level layers, 2 = blocks, ...")
    p.add_argument("--checkpoint", help="summarise this checkpoint instead of a fresh network")
    args = p.parse_args(argv)
    if args.checkpoint:
        from model.network.checkpoint import load_checkpoint

        model = load_checkpoint(args.checkpoint).model
    else:
        model = resnet18()
    in_channels = next(model.parameters()).shape[1]
    rows = layer_summary(model, args.input_size, in_channels, args.depth)
    print(format_table(rows, sum(p.numel() for p in model.parameters())))


if __name__ == "__main__":
    run("python -m model.summary", main)
