import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from model.data.fashion_mnist import CLASS_NAMES
from model.network.checkpoint import (
    CheckpointError,
    copy_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from model.network.checkpoint_info import InputSpec, read_checkpoint_info
from model.network.net import resnet18


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 0.0), (torch.float16, 5e-2)])
def test_round_trip_keeps_outputs(tmp_path: Path, dtype: torch.dtype, tol: float) -> None:
    torch.manual_seed(0)
    model = resnet18().eval()
    path = save_checkpoint(
        tmp_path / "m",
        model,
        class_names=CLASS_NAMES,
        input_size=28,
        mean=0.3,
        std=0.4,
        weights_dtype=dtype,
    )
    ckpt = load_checkpoint(path)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), ckpt.model(x), atol=tol)
    meta = ckpt.meta
    assert meta["weights_dtype"] == str(dtype).removeprefix("torch.")
    assert meta["class_names"] == list(CLASS_NAMES) and meta["polarity"] == "light-on-dark"
    assert meta["normalization"] == {"mean": 0.3, "std": 0.4}
    assert (ckpt.mean, ckpt.std, ckpt.in_channels, ckpt.num_classes) == (0.3, 0.4, 1, 10)
    assert ckpt.input_spec == InputSpec(28, 0.3, 0.4)
    for key in ("torch_version", "created_at", "weights_sha256", "git_commit", "recipe", "metrics"):
        assert key in meta
    assert load_checkpoint(path.with_suffix(".json")).short_hash == ckpt.short_hash


def test_tampered_weights_fail_the_hash(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = copy_checkpoint(tiny_checkpoint, tmp_path / "copy")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path)


def _five_classes(meta: dict) -> None:
    meta["num_classes"], meta["class_names"] = 5, meta["class_names"][:5]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda meta: meta.update(architecture="resnet50"), "architecture 'resnet50'"),
        (_five_classes, r"wrong tensor shapes: \['7.weight"),
    ],
    ids=["architecture", "shapes"],
)
def test_metadata_that_does_not_fit_the_weights_is_named(
    tiny_checkpoint: Path, tmp_path: Path, change: Callable[[dict], None], message: str
) -> None:
    path = copy_checkpoint(tiny_checkpoint, tmp_path / "copy")
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


@pytest.mark.parametrize("missing", [".safetensors", ".json"])
def test_missing_file_is_named(tiny_checkpoint: Path, tmp_path: Path, missing: str) -> None:
    path = copy_checkpoint(tiny_checkpoint, tmp_path / "copy")
    path.with_suffix(missing).unlink()
    with pytest.raises(CheckpointError, match=f"not found: .*{missing}"):
        load_checkpoint(path)


def test_corrupt_metadata_is_named(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = copy_checkpoint(tiny_checkpoint, tmp_path / "copy")
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)


def test_copy_renames_and_still_loads(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = copy_checkpoint(tiny_checkpoint, tmp_path / "renamed.json")
    assert path == tmp_path / "renamed.safetensors"
    ckpt = load_checkpoint(path)
    assert ckpt.meta["weights_file"] == "renamed.safetensors"
    assert ckpt.short_hash == load_checkpoint(tiny_checkpoint).short_hash


def test_saved_checkpoints_are_readable_by_others(tiny_checkpoint: Path) -> None:
    """A container's user (not the trainer) must be able to read what training wrote."""
    for path in (tiny_checkpoint, tiny_checkpoint.with_suffix(".json")):
        assert path.stat().st_mode & 0o777 == 0o644, path


@pytest.mark.parametrize("name", ["tmp.AbC123", "v1.2"])
def test_a_path_with_dots_is_named_as_given(tmp_path: Path, name: str) -> None:
    with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path / name}.safetensors")):
        read_checkpoint_info(tmp_path / name)


def test_a_folder_for_a_checkpoint_says_so(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path} is a folder")):
        read_checkpoint_info(tmp_path)
