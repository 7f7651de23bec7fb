"""Fashion-MNIST in memory: the idx files found (or downloaded) and read into uint8 tensors."""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# Statistics of the 60,000 training images, pixel values in [0, 1].
MEAN = 0.2860
STD = 0.3530

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "fashion-resnet"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class DataNotFoundError(RuntimeError):
    """Fashion-MNIST could not be found or downloaded."""


def _has_files(folder: Path) -> bool:
    names = [name for pair in FILES.values() for name in pair]
    return all((folder / n).exists() or (folder / f"{n}.gz").exists() for n in names)


def find_data_dir(
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    system_dir: Path = DEBIAN_DIR,
    cache_dir: Path = DEFAULT_CACHE_DIR,
) -> Path:
    """Return the folder holding the idx files: argument, $FASHION_MNIST_DIR, Debian's, cache."""
    explicit = data_dir if data_dir is not None else os.environ.get("FASHION_MNIST_DIR") or None
    if explicit is not None:
        folder = Path(explicit)
        for candidate in (folder, folder / "FashionMNIST" / "raw"):
            if _has_files(candidate):
                return candidate
        raise DataNotFoundError(
            f"Fashion-MNIST files not found in {folder} (from --data-dir or FASHION_MNIST_DIR): "
            f"it must hold {', '.join(n + '.gz' for pair in FILES.values() for n in pair)}."
        )
    raw = cache_dir / "FashionMNIST" / "raw"
    for candidate in (system_dir, raw):
        if _has_files(candidate):
            return candidate
    hint = (
        "Fashion-MNIST not found. Install it with `apt-get install dataset-fashion-mnist` "
        f"(Debian, into {DEBIAN_DIR}), or point --data-dir / FASHION_MNIST_DIR at a folder "
        "with the four *-ubyte.gz files"
    )
    if not download:
        raise DataNotFoundError(hint + ".")
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(cache_dir), train=True, download=True)
        FashionMNIST(str(cache_dir), train=False, download=True)
    except Exception as exc:  # any network or disk failure ends in the same advice
        raise DataNotFoundError(f"{hint}; the download into {cache_dir} failed: {exc}") from exc
    return raw


def read_idx(path: Path) -> Tensor:
    """Read an idx1/idx3 file (optionally gzipped) into a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file")
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != math.prod(shape):
        raise ValueError(f"{path} is truncated: expected {math.prod(shape)} values")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(shape)


@dataclass(frozen=True)
class Split:
    """One split in memory: (N, 28, 28) uint8 images and (N,) int64 labels."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> Split:
        """The first n examples (all when n is None)."""
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])


def load_split(split: str, data_dir: str | Path | None = None) -> Split:
    """Load "train" or "test" from the folder find_data_dir picks."""
    folder = find_data_dir(data_dir)
    tensors = []
    for name in FILES[split]:
        path = folder / name if (folder / name).exists() else folder / f"{name}.gz"
        tensors.append(read_idx(path))
    images, labels = tensors
    return Split(images, labels.to(torch.int64))
