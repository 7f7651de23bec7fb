"""Train the d2l ResNet-18; `python -m model.train --help` lists the flags.

Defaults are d2l's recipe (Fashion-MNIST at 96x96); `--recipe photo` trains the photo view,
taught by a fine-tuned teacher. The pieces live in model.training (config, sources, steps,
state, report); this file strings them together: build, resume, then one loop of train an
epoch, evaluate, write.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from model.cli import DefaultsFormatter, Parser, run
from model.data.fashion_mnist import CLASS_NAMES
from model.export import write_graphs
from model.network.checkpoint import load_checkpoint, save_checkpoint
from model.network.device import resolve_device
from model.network.net import init_xavier, resnet18
from model.training.config import (
    RECIPES,
    RUNTIME_FIELDS,
    TrainConfig,
    config_problem,
    with_saved_recipe,
)
from model.training.report import epoch_record, plot_curves
from model.training.sources import (
    build_data,
    evaluate_epoch,
    input_normalisation,
    photo_accuracy,
    train_batches,
)
from model.training.state import load_state, save_state
from model.training.steps import Stepper, lr_at, make_stepper, run_epoch

# -----------------------------------------------------------------------------
# Output: metrics, curves, checkpoints and the state a resumed run starts from


def _write_epoch(
    out: Path, stepper: Stepper, cfg: TrainConfig, state: dict[str, Any], record: dict[str, Any]
) -> None:
    """Rank 0's per-epoch output: metrics line, curves, last and best checkpoints, resume state."""
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    plot_curves(state["history"], out / "curves.png")
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUNTIME_FIELDS}
    recipe["test_images"] = cfg.test_subset or 10_000
    is_best = record["test_acc"] > state["best_acc"]
    if is_best:
        state["best_acc"], state["best_epoch"] = record["test_acc"], record["epoch"]
    metrics = {**record, "best_epoch": state["best_epoch"], "best_test_acc": state["best_acc"]}
    mean, std = input_normalisation(cfg)
    kwargs: dict[str, Any] = dict(
        class_names=CLASS_NAMES,
        input_size=cfg.resize,
        mean=mean,
        std=std,
        view=cfg.view,
        framing=cfg.photo_framing,
        recipe=recipe,
        metrics=metrics,
        weights_dtype=getattr(torch, cfg.weights_dtype),
    )
    save_checkpoint(out / "last", stepper.served, **kwargs)
    if is_best:
        save_checkpoint(out / "best", stepper.served, **kwargs)
    save_state(out, stepper, {**state, "config": dataclasses.asdict(cfg)})


# -----------------------------------------------------------------------------
# Building a run: processes, data, model


def setup_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device]:
    """(rank, world size, device); torchrun sets WORLD_SIZE, RANK and LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(cfg.device)
    if world == 1:
        return 0, 1, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world, device


def build_model(cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, Stepper]:
    """The network, Xavier-initialised from cfg.seed, and its optimisation step."""
    torch.manual_seed(cfg.seed)
    model = resnet18(num_classes=len(CLASS_NAMES))
    init_xavier(model)
    if cfg.init_from:
        model.load_state_dict(load_checkpoint(cfg.init_from).model.state_dict())
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, make_stepper(model, cfg, device)


# -----------------------------------------------------------------------------
# The run


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training as cfg says; returns the final state."""
    # -- configuration, processes and device ---------------------------------
    cfg = with_saved_recipe(cfg)
    out = Path(cfg.out)
    rank, world, device = setup_distributed(cfg)
    is_main = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    # -- data, model and optimiser, resumed state ----------------------------
    data = build_data(cfg, device)
    model, stepper = build_model(cfg, device)
    state: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "best_acc": -1.0,
        "best_epoch": 0,
        "history": [],
    }
    if cfg.resume and (out / "state.json").exists():
        state = load_state(out, stepper, device)
        if is_main:
            print(
                f"resuming {out} after epoch {state['epoch']} of {cfg.epochs} "
                "(recipe from state.json)"
            )
    if world > 1:
        stepper.model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    sampler = DistributedSampler(
        range(len(data.train)), num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed
    )
    total_steps = len(train_batches(cfg, data, sampler, 0, rank, device)) * cfg.epochs
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        print(
            f"training d2l-resnet18 on {device} ({world} process(es)), {len(data.train)} train / "
            f"{len(data.test)} test images at {cfg.resize}x{cfg.resize}"
        )

    # -- the loop: train an epoch, evaluate, write ---------------------------
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        sampler.set_epoch(epoch)
        loader = train_batches(cfg, data, sampler, epoch, rank, device)
        bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{cfg.epochs}", leave=False,
                   dynamic_ncols=True, disable=not (is_main and cfg.progress))  # fmt: skip
        step = state["step"]

        def set_lr() -> None:
            nonlocal step
            for group in stepper.optimizer.param_groups:
                group["lr"] = lr_at(step, total_steps, cfg)
            step += 1

        loss, acc, seen, seconds = run_epoch(stepper, loader, set_lr, bar)
        bar.close()
        correct, total = evaluate_epoch(stepper.served, cfg, data, rank, world)
        lr = lr_at(step, total_steps, cfg)
        record = epoch_record(epoch, lr, (loss, acc, seen, seconds), (correct, total), world)
        if data.photo_val is not None:
            record["photo_val"] = photo_accuracy(stepper.served, cfg, data.photo_val)
        state["step"], state["epoch"] = step, epoch
        state["history"].append(record)
        if is_main:
            print(
                f"epoch {epoch}/{cfg.epochs}: loss {record['train_loss']:.3f}, "
                f"train acc {record['train_acc']:.3f}, test acc {record['test_acc']:.3f}, "
                f"{record['examples_per_sec']:.1f} examples/sec on {device}"
                + (
                    f", photo val {record['photo_val']['mean']:.3f}"
                    if "photo_val" in record
                    else ""
                ),
                flush=True,
            )
            _write_epoch(out, stepper, cfg, state, record)
        if world > 1:
            dist.barrier()
    # -- the served graphs of the checkpoints written, once at the end --------
    if is_main and state["epoch"] and cfg.view == "silhouette":
        for name in ("best", "last"):
            write_graphs(load_checkpoint(out / f"{name}.safetensors"))
    if world > 1:
        dist.destroy_process_group()
    return state


# -----------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Build a TrainConfig from the command line: one flag per field, its help the field's."""
    p = Parser(
        prog="python -m model.train",
        description="Train d2l's ResNet-18 on Fashion-MNIST. Defaults are d2l's recipe.",
        formatter_class=DefaultsFormatter,
    )
    p.add_argument(
        "--recipe",
        choices=tuple(RECIPES),
        default="d2l",
        help="a named recipe: its values "
        "become the defaults of the flags below (photo: the photo view, taught by the teacher)",
    )
    types = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        flag = meta.get("flag", "--" + f.name.replace("_", "-"))
        if types[f.name] is bool:
            action = "store_false" if f.default else "store_true"
            p.add_argument(flag, dest=f.name, action=action, help=meta["help"])
            continue
        kind = next(
            t for t in typing.get_args(types[f.name]) or (types[f.name],) if t is not type(None)
        )
        p.add_argument(flag, dest=f.name, type=kind, default=f.default, help=meta["help"],
                       choices=meta.get("choices"))  # fmt: skip
    recipe, _ = p.parse_known_args(argv)
    p.set_defaults(**RECIPES[recipe.recipe])
    args = vars(p.parse_args(argv))
    args.pop("recipe")
    cfg = TrainConfig(**args)
    if problem := config_problem(cfg):
        p.error(problem)
    return cfg


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    train(parse_args(argv))


if __name__ == "__main__":
    run("python -m model.train", main)
