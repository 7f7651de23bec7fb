import gzip
from pathlib import Path

import pytest
import torch

from model.data.fashion_mnist import (
    CLASS_NAMES,
    FILES,
    DataNotFoundError,
    find_data_dir,
    load_split,
    read_idx,
)


def write_idx(path: Path, array: torch.Tensor) -> None:
    header = bytes([0, 0, 8, array.dim()]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.to(torch.uint8).numpy().tobytes())


def fake_dataset(folder: Path, n: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for images, labels in FILES.values():
        write_idx(folder / f"{images}.gz", torch.randint(0, 256, (n, 28, 28)))
        write_idx(folder / f"{labels}.gz", torch.arange(n) % 10)
    return folder


def test_loader_reads_the_real_debian_data() -> None:
    train, test = load_split("train"), load_split("test")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.images.shape == (60_000, 28, 28) and train.images.dtype == torch.uint8
    for split in (train, test):
        assert sorted(split.labels.unique().tolist()) == list(range(10))
        assert torch.bincount(split.labels).tolist() == [len(split) // 10] * 10
    assert len(CLASS_NAMES) == 10


def test_source_order_argument_then_env_then_system(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arg, env, system = (fake_dataset(tmp_path / n) for n in ("arg", "env", "system"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("FASHION_MNIST_DIR", str(env))
    assert find_data_dir(arg, system_dir=system, cache_dir=cache) == arg
    assert find_data_dir(None, system_dir=system, cache_dir=cache) == env
    monkeypatch.delenv("FASHION_MNIST_DIR")
    assert find_data_dir(None, system_dir=system, cache_dir=cache) == system
    assert len(load_split("test", arg)) == 6


def test_missing_data_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        find_data_dir(system_dir=tmp_path / "none", cache_dir=tmp_path / "c", download=False)
    with pytest.raises(DataNotFoundError, match="not found in"):
        find_data_dir(tmp_path / "empty")


def test_truncated_idx_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    write_idx(path, torch.zeros(4, 28, 28))
    data = gzip.decompress(path.read_bytes())[:-10]
    path.write_bytes(gzip.compress(data))
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)
