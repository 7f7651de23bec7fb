"""Training images/s: the project's loop vs a bare hand-written loop on the same model and batches.

    python benchmarks/train_throughput.py [--sizes 28 96] [--batch-size 128] [--steps 10]

Both loops take the same real Fashion-MNIST images. The project's loop is model.train's: the
BatchLoader building each batch from uint8 images (index, resize, normalise), the per-step learning
rate, the Stepper and a tqdm bar. The bare loop is a plain forward/backward/step over batches made
before the clock starts. Rounds alternate between the two so drift on a shared machine hits both.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from tqdm import tqdm

from model.data.fashion_mnist import load_split
from model.network.device import resolve_device
from model.network.net import init_xavier, resnet18
from model.train import TrainConfig, make_stepper, run_epoch
from model.training.batches import BatchLoader


def fresh_model(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    model = resnet18()
    init_xavier(model)
    return model.to(device)


def bare_loop(
    model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], lr: float
) -> float:
    """Images/s of the plainest SGD loop over pre-built batches."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    start = time.perf_counter()
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return sum(len(y) for _, y in batches) / (time.perf_counter() - start)


def project_loop(model: nn.Module, loader: BatchLoader, cfg: TrainConfig) -> float:
    """Images/s of model.train's epoch loop on the same examples."""
    stepper = make_stepper(model, cfg, next(model.parameters()).device)

    def set_lr() -> None:
        for group in stepper.optimizer.param_groups:
            group["lr"] = cfg.lr

    with tqdm(total=len(loader), leave=False, disable=None) as bar:
        _, _, seen, seconds = run_epoch(stepper, loader, set_lr, bar)
    return seen / seconds


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[28, 96])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=6, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    device = resolve_device(args.device)
    split = load_split("train")
    n = args.batch_size * args.steps
    indices = torch.arange(n, device=device)
    split_dev = type(split)(split.images[:n].to(device), split.labels[:n].to(device))
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds (median)"
    )
    print(f"{'input':>6} {'project img/s':>14} {'bare img/s':>11} {'ratio':>6}")
    for size in args.sizes:
        cfg = TrainConfig(resize=size, batch_size=args.batch_size)
        loader = BatchLoader(split_dev, indices, args.batch_size, size)
        batches = list(loader)
        model = fresh_model(device)
        bare_loop(model, batches[:2], cfg.lr)  # warm-up: allocator, oneDNN/cuDNN kernel choice
        project, bare = [], []
        for _ in range(args.rounds):
            project.append(project_loop(model, loader, cfg))
            bare.append(bare_loop(model, batches, cfg.lr))
        pm, bm = statistics.median(project), statistics.median(bare)
        print(f"{size:>4}px {pm:>14.1f} {bm:>11.1f} {pm / bm:>6.3f}")


if __name__ == "__main__":
    main()
