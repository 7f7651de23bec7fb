"""The state a resumed run starts from, without pickle: tensors to safetensors, the rest to JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from model.training.steps import Stepper


def save_state(out: Path, stepper: Stepper, state: dict[str, Any]) -> None:
    """Resume state without pickle: tensors to safetensors, the rest to JSON, swapped atomically."""
    model = getattr(stepper.model, "module", stepper.model)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if stepper.ema is not None:
        for k, v in stepper.ema.state_dict().items():
            tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    opt = stepper.optimizer.state_dict()
    for idx, param_state in opt["state"].items():
        for name, value in param_state.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
    state = {**state, "param_groups": opt["param_groups"]}
    tmp = out / "state.safetensors.tmp"
    save_file(tensors, str(tmp))
    tmp.replace(out / "state.safetensors")
    (out / "state.json.tmp").write_text(json.dumps(state, indent=2))
    (out / "state.json.tmp").replace(out / "state.json")


def load_state(out: Path, stepper: Stepper, device: torch.device) -> dict[str, Any]:
    state = json.loads((out / "state.json").read_text())
    tensors = load_file(str(out / "state.safetensors"), device=str(device))
    stepper.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if stepper.ema is not None:
        stepper.ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    optimizer = stepper.optimizer
    opt_state: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    return state
