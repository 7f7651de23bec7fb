"""The optimisation step and the epoch: schedule, loss, mixed precision, moving average."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from model.training.config import AMP_DTYPES, TrainConfig
from model.training.distill import DistilledSetLoss, Targets
from model.training.loss import GarmentLoss, SetCrossEntropy, in_set


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Learning rate for an optimizer step; a pure function of the step so resuming is exact."""
    t = min(step / max(total_steps, 1), 1.0)
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * t))
    # One-cycle as torch's OneCycleLR defaults: 30% cosine warm-up from lr/25, then down to lr/25e4.
    start, end, warm = cfg.lr / 25.0, cfg.lr / 25e4, 0.3
    if t < warm:
        return cfg.lr + (start - cfg.lr) * (1 + math.cos(math.pi * t / warm)) / 2
    return end + (cfg.lr - end) * (1 + math.cos(math.pi * (t - warm) / (1 - warm))) / 2


@dataclass
class Stepper:
    """One optimisation step on a batch; what both training and the throughput benchmark call."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: nn.Module
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    scaler: torch.amp.GradScaler | None = None
    ema: AveragedModel | None = None  # the weights' moving average, updated after each step
    garment: GarmentLoss | None = None  # the garment-or-not loss on the pooled features

    @property
    def served(self) -> nn.Module:
        """The network to evaluate and save: the moving average when there is one."""
        return (
            self.ema.module if self.ema is not None else getattr(self.model, "module", self.model)
        )

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Train on (x, y); returns the summed loss and the count of correct predictions."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = (
            torch.autocast(device_type=x.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            logits = self.model(x)
            loss = self.loss_fn(logits, y)
            if self.garment is not None:
                loss = loss + self.garment(y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(getattr(self.model, "module", self.model))
        with torch.no_grad():
            return loss.detach() * len(y), hits(logits, y).sum()


def hits(logits: Tensor, targets: Tensor | Targets) -> Tensor:
    """(B,) bool: the top class is the target, or in the target set."""
    if isinstance(targets, Targets):
        return targets.hits(logits)
    top = logits.argmax(1)
    return in_set(top, targets) if targets.dtype == torch.bool else top == targets


def make_stepper(model: nn.Module, cfg: TrainConfig, device: torch.device) -> Stepper:
    """Optimizer, loss and precision settings of cfg around model."""
    garment = None
    params = list(model.parameters())
    if cfg.garment_loss:
        last = getattr(model, "module", model)[-1]
        garment = GarmentLoss(last.in_features, cfg.garment_loss).to(device)
        last.register_forward_pre_hook(garment.hook)
        params += list(garment.parameters())
    optimizer = torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )
    amp_dtype = AMP_DTYPES[cfg.amp]
    if amp_dtype is not None and device.type != "cuda":
        raise SystemExit("--amp bf16/fp16 needs a CUDA device")
    scaler = torch.amp.GradScaler("cuda") if amp_dtype is torch.float16 else None
    # torch's own EMA; buffers too, so BatchNorm's statistics belong to the averaged weights.
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        if cfg.ema_decay
        else None
    )
    return Stepper(
        model=model,
        optimizer=optimizer,
        loss_fn=(
            DistilledSetLoss(cfg.distill_weight, cfg.distill_temperature, cfg.label_smoothing)
            if cfg.view == "photo"
            else SetCrossEntropy(cfg.label_smoothing, cfg.outlier_exposure)
        ),
        amp_dtype=amp_dtype,
        channels_last=cfg.channels_last,
        scaler=scaler,
        ema=ema,
        garment=garment,
    )


def run_epoch(
    stepper: Stepper,
    batches: Iterable[tuple[Tensor, Tensor]],
    set_lr: Callable[[], None] = lambda: None,
    progress: tqdm | None = None,
) -> tuple[float, float, int, float]:
    """One pass over batches; returns (mean loss, accuracy, examples, seconds)."""
    stepper.model.train()
    loss_sum = torch.zeros(())
    correct = torch.zeros((), dtype=torch.int64)
    seen = 0
    start = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        set_lr()
        batch_loss, batch_correct = stepper(x, y)
        if i == 0:
            loss_sum, correct = loss_sum.to(x.device), correct.to(x.device)
        loss_sum += batch_loss
        correct += batch_correct
        seen += len(y)
        # Syncing with the device each step would stall CUDA; refresh the bar every 10 steps.
        if progress is not None:
            progress.update(1)
            if i % 10 == 0:
                elapsed = time.perf_counter() - start
                progress.set_postfix(
                    loss=f"{loss_sum.item() / seen:.3f}",
                    acc=f"{correct.item() / seen:.3f}",
                    img_s=f"{seen / elapsed:.0f}",
                )
    if seen and loss_sum.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1), seen, seconds


@torch.no_grad()
def count_correct(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], channels_last: bool = False
) -> tuple[int, int]:
    """(correct, total) of model's argmax over batches, in eval mode."""
    model.eval()
    correct = total = 0
    for x, y in batches:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct, total
