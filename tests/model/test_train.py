import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import model.train as train_mod
from model.checkpoint import load_checkpoint
from model.data import load_split
from model.evaluate import main as evaluate_main
from model.net import init_xavier, resnet18
from model.preprocess import to_model_input
from model.train import TrainConfig, lr_at, make_stepper
from tests.helpers import ROOT, TINY_TEST


def test_one_sgd_step_lowers_the_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    net = resnet18()
    init_xavier(net)
    split = load_split("train").subset(64)
    x, y = to_model_input(split.images, 28, 0.286, 0.353), split.labels
    stepper = make_stepper(net, TrainConfig(), torch.device("cpu"))
    before, _ = stepper(x, y)
    after, _ = stepper(x, y)  # returns the loss at the weights the first step produced
    assert after < before


@pytest.mark.parametrize(
    ("schedule", "at", "expected"),
    [
        ("constant", 0.5, 0.1),
        ("cosine", 0.0, 0.1),
        ("cosine", 0.5, 0.05),
        ("cosine", 1.0, 0.0),
        ("onecycle", 0.0, 0.1 / 25),
        ("onecycle", 0.3, 0.1),
        ("onecycle", 1.0, 0.1 / 25e4),
    ],
)
def test_lr_schedules(schedule: str, at: float, expected: float) -> None:
    cfg = TrainConfig(lr=0.1, schedule=schedule)
    assert lr_at(int(at * 1000), 1000, cfg) == pytest.approx(expected, abs=1e-9)


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


def test_resume_continues_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
