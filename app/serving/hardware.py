"""Where the model runs: 'cpu' or 'cuda:N' from the MODEL_DEVICE setting, and its name for logs.

torch is imported only where a GPU could be used: on a CPU-only host the service runs without it
even where it is installed."""

from __future__ import annotations

from pathlib import Path

from app.serving.runner import installed


def nvidia_device_present() -> bool:
    """Whether the host shows an NVIDIA GPU (its device files), without importing torch."""
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def describe_device(device: str) -> str:
    """A log-friendly name: 'cuda:0 (NVIDIA H200)' or 'cpu (no CUDA device found)'."""
    if device.startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if nvidia_device_present():
        return "cpu (a GPU is present but not chosen)"
    return "cpu (no CUDA device found)"


def serving_device(name: str) -> str:
    """'cpu' or 'cuda:N' for a MODEL_DEVICE setting; without torch only the CPU serves.

    torch is imported only where a GPU could be used: on a CPU-only host the service then runs
    without it even where it is installed (RSS 620 -> about 150 MB, a faster start)."""
    if name == "cpu" or (name == "auto" and not nvidia_device_present()):
        return "cpu"
    if not installed("torch"):
        raise RuntimeError(f"MODEL_DEVICE={name} needs torch, which is not installed")
    import torch

    from model.network.device import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)
