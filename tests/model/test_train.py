import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import model.train as train_mod
from model.data.fashion_mnist import load_split
from model.evaluate import main as evaluate_main
from model.network.checkpoint import load_checkpoint
from model.train import parse_args
from model.training.batches import Augment, MixedBatchLoader, PhotoLike
from model.training.config import TrainConfig
from model.training.sources import build_data
from tests.helpers import ROOT, TINY_TEST, write_photo_folder

pytestmark = pytest.mark.slow  # training runs


def test_cli_writes_a_checkpoint_that_loads_and_evaluates(
    trained_run: Path, tmp_path: Path
) -> None:
    files = {p.name for p in trained_run.iterdir()}
    assert {
        "best.safetensors",
        "best.json",
        "last.safetensors",
        "metrics.jsonl",
        "curves.png",
    } <= files
    ckpt = load_checkpoint(trained_run / "best.safetensors")
    assert ckpt.input_size == 28 and ckpt.meta["recipe"]["lr"] == 0.05
    epochs = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1] and epochs[0]["examples_per_sec"] > 0
    report = evaluate_main(
        [
            f"--checkpoint={trained_run / 'best.json'}",
            f"--test-subset={TINY_TEST}",
            f"--out={tmp_path}",
        ]
    )
    # The evaluation CLI must agree with the accuracy training measured on the same images.
    assert report["accuracy"] == pytest.approx(epochs[0]["test_acc"])
    assert sum(map(sum, report["confusion_matrix"])) == TINY_TEST
    assert json.loads((tmp_path / "report.json").read_text())["images"] == TINY_TEST
    assert (tmp_path / "confusion.png").stat().st_size > 1000


# The recipe fields a run's state.json lacks when the run began before the photo view existed.
PHOTO_VIEW_FIELDS = ("view", "teacher", "distill_weight", "distill_temperature")


@pytest.mark.parametrize("older_state", [False, True], ids=["same-code", "state-before-the-split"])
def test_resume_continues_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, older_state: bool
) -> None:
    args = ["--epochs=2", "--resize=28", "--batch-size=64", "--train-subset=192",
            "--test-subset=64", "--momentum=0.9", "--schedule=onecycle", "--crop-padding=2",
            "--flip", "--no-progress"]  # fmt: skip
    train_mod.main([*args, f"--out={tmp_path / 'whole'}"])

    write_epoch = train_mod._write_epoch

    def write_then_die(*a: object, **kw: object) -> None:
        write_epoch(*a, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "_write_epoch", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_mod.main([*args, f"--out={tmp_path / 'split'}"])
    monkeypatch.setattr(train_mod, "_write_epoch", write_epoch)
    if older_state:
        state_file = tmp_path / "split" / "state.json"
        state = json.loads(state_file.read_text())
        for name in PHOTO_VIEW_FIELDS:
            del state["config"][name]
        state_file.write_text(json.dumps(state))
    # The recipe comes back from state.json: the flags given on resume are runtime ones.
    train_mod.main(["--resume", f"--out={tmp_path / 'split'}", "--no-progress"])

    whole = load_file(str(tmp_path / "whole" / "state.safetensors"))
    split = load_file(str(tmp_path / "split" / "state.safetensors"))
    assert whole.keys() == split.keys()
    for key in whole:
        torch.testing.assert_close(whole[key], split[key], rtol=1e-4, atol=1e-5, msg=key)
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_torchrun_two_cpu_processes_write_one_checkpoint(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "model.train", "--device=cpu", "--epochs=1", "--resize=28", "--batch-size=32",
           "--train-subset=256", "--test-subset=128", f"--out={tmp_path}",
           "--no-progress"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("epoch 1/1:") == 1  # only rank 0 logs
    assert "(2 process(es))" in proc.stdout
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == [
        "best.safetensors", "last.safetensors", "state.safetensors"
    ]  # fmt: skip
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 1
    load_checkpoint(tmp_path / "best.safetensors")


def test_defaults_are_d2ls_recipe_on_fashion_mnist_alone() -> None:
    cfg = parse_args([])
    assert (cfg.lr, cfg.epochs, cfg.batch_size, cfg.resize, cfg.momentum) == (0.05, 10, 256, 96, 0)
    assert cfg.schedule == "constant" and cfg.init_from is None
    assert cfg.photos is None and cfg.fm_holdout == 0 and cfg.fm_photo_like == 0


def test_training_on_both_sources(tmp_path: Path) -> None:
    folder = write_photo_folder(tmp_path / "photos", per_folder=12)
    out = tmp_path / "run"
    train_mod.main(["--epochs=1", "--resize=28", "--batch-size=32", "--train-subset=256",
                    "--test-subset=64", f"--photos={folder}", "--photo-share=0.25",
                    "--fm-photo-like=0.5", "--fm-holdout=1000", f"--out={out}",
                    "--no-progress"])  # fmt: skip
    [record] = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert set(record["photo_val"]) == {"t-shirt", "shoes", "longsleeve", "mean"}
    ckpt = load_checkpoint(out / "last.safetensors")
    assert ckpt.meta["recipe"]["photos"] == str(folder)
    assert ckpt.meta["recipe"]["fm_holdout"] == 1000


def test_validation_photos_and_none_of_the_ten_are_never_trained_on(tmp_path: Path) -> None:
    folder = write_photo_folder(tmp_path / "photos", per_folder=12)
    cfg = TrainConfig(resize=28, photos=str(folder), train_subset=64, test_subset=32)
    data = build_data(cfg, torch.device("cpu"))
    assert data.photos is not None and data.photo_val is not None
    assert set(data.photos.files).isdisjoint(data.photo_val.files)
    assert "hat" not in data.photos.folders and "hat" in data.photo_val.folders
    # Every photo a batch carries comes from the training split.
    loader = MixedBatchLoader(data.train, torch.arange(64), (data.photos.images,
                              data.photos.label_sets), 24, 8, 28, Augment(), PhotoLike(), 0.0,
                              torch.Generator().manual_seed(0))  # fmt: skip
    x, targets = next(iter(loader))
    assert x.shape == (32, 1, 28, 28) and targets.shape == (32, 10)
    assert targets[:24].sum(1).eq(1).all() and targets[24:].any(1).all()


def test_fm_holdout_keeps_the_last_training_images_out(tmp_path: Path) -> None:
    cfg = TrainConfig(resize=28, fm_holdout=1000, test_subset=16)
    data = build_data(cfg, torch.device("cpu"))
    full = load_split("train")
    assert len(data.train) == 59_000
    assert torch.equal(data.train.images[-1], full.images[-1001])
