"""A checkpoint's metadata without torch: the facts every reader takes from it, and the
mistakes it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.network.checkpoint_info import (
    PHOTO,
    SILHOUETTE,
    CheckpointError,
    graph_file,
    read_checkpoint_info,
)


def _copy(tiny_checkpoint: Path, folder: Path, **changes: object) -> Path:
    """A copy of the checkpoint in folder, its metadata changed (None: the field removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        (folder / f"c{suffix}").write_bytes(tiny_checkpoint.with_suffix(suffix).read_bytes())
    meta = json.loads((folder / "c.json").read_text())
    meta.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del meta[key]
    (folder / "c.json").write_text(json.dumps(meta))
    return folder / "c.safetensors"


def test_the_facts_come_from_the_metadata(tiny_checkpoint: Path, tmp_path: Path) -> None:
    info = read_checkpoint_info(_copy(tiny_checkpoint, tmp_path, view=PHOTO, input_size=96))
    assert (info.view, info.input_size, info.in_channels) == (PHOTO, 96, 1)
    assert info.temperature == 1.0 and info.flag_threshold is None and info.garment_head is None
    assert info.short_hash == info.meta["weights_sha256"][:12]
    assert graph_file(info.path, "int8").name == "c.int8.onnx"


def test_files_from_before_a_field_existed_read_as_then(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    info = read_checkpoint_info(_copy(tiny_checkpoint, tmp_path, view=None, in_channels=None))
    assert info.view == SILHOUETTE and info.in_channels == 1


def test_the_graph_key_follows_what_the_graph_depends_on(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    base = read_checkpoint_info(
        _copy(tiny_checkpoint, tmp_path / "a" if (tmp_path / "a").mkdir() is None else tmp_path)
    )
    (tmp_path / "b").mkdir()
    calibrated = read_checkpoint_info(
        _copy(tiny_checkpoint, tmp_path / "b", calibration={"temperature": 0.7})
    )
    assert calibrated.temperature == 0.7 and calibrated.graph_key != base.graph_key


@pytest.mark.parametrize(
    ("change", "message"),
    [({"architecture": "resnet50"}, "resnet50"), ({"input_size": None}, "lacks input_size")],
)
def test_mistakes_are_named(
    tiny_checkpoint: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_info(_copy(tiny_checkpoint, tmp_path, **change))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint_info(tmp_path / "none.safetensors")
