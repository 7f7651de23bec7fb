"""Temperature scaling, calibration error, AUROC and the none-of-the-ten threshold."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.calibrate import fit_garment_head, main
from model.network.checkpoint import copy_checkpoint, load_checkpoint
from model.network.checkpoint_info import read_checkpoint_info
from model.training.scores import auroc
from tests.helpers import write_photo_folder

pytestmark = pytest.mark.slow  # the calibration CLI


def test_cli_writes_the_calibration_into_the_metadata(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    path = copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    folder = write_photo_folder(tmp_path / "photos", per_folder=10)
    report = main([f"--checkpoint={path}", f"--photos={folder}", "--head-samples=60"])
    ckpt = load_checkpoint(path)  # the weights' hash still holds
    assert ckpt.temperature == pytest.approx(report["temperature"]) and ckpt.temperature > 0
    assert ckpt.flag_threshold == pytest.approx(report["flag_threshold"])
    assert report["flagged"]["in_class"] <= 0.05
    assert report["fitted_on"] == {
        "photo_validation_in_class": 6,
        "fashion_mnist_train_last": 2000,
        "garment_head_samples": 60,
    }
    assert 0 <= report["none_of_the_ten_auroc"] <= 1
    assert ckpt.garment_head is not None and len(ckpt.garment_head["weight"]) == 512
    assert graph_key_without_head(path) != ckpt.graph_key  # the graph holds the head


def graph_key_without_head(path: Path) -> str:
    info = read_checkpoint_info(path)
    calibration = {k: v for k, v in info.meta["calibration"].items() if k != "garment_head"}
    return replace(info, meta={**info.meta, "calibration": calibration}).graph_key


def test_the_garment_head_separates_what_it_was_fitted_on_and_folds_its_scaling() -> None:
    gen = torch.Generator().manual_seed(0)
    # Garments and others differ along one direction of features on very different scales.
    scale = torch.logspace(-2, 2, 16)
    garments = torch.randn(400, 16, generator=gen) * scale
    others = torch.randn(400, 16, generator=gen) * scale
    others[:, 3] += 4 * scale[3]
    head = fit_garment_head([(garments[:200], 1.0)], [(others[:200], 1.0)])
    w, b = torch.tensor(head["weight"], dtype=torch.float64), head["bias"]
    score = lambda f: torch.sigmoid(f.double() @ w + b)  # noqa: E731
    assert auroc(score(garments[200:]), score(others[200:])) > 0.97
    assert head == fit_garment_head([(garments[:200], 1.0)], [(others[:200], 1.0)])  # same data


def test_the_threshold_keeps_every_type_within_the_budget() -> None:
    from model.calibrate import flagged_by_type, per_type_threshold

    gen = torch.Generator().manual_seed(0)
    # Shoes' confidence runs lower than shirts': the strictest type sets the threshold.
    shirts = 0.6 + 0.4 * torch.rand(200, generator=gen)
    shoes = 0.2 + 0.6 * torch.rand(40, generator=gen)
    confidence = torch.cat([shirts, shoes])
    folders = ("shirt",) * 200 + ("shoes",) * 40
    threshold = per_type_threshold(confidence, folders, budget=0.05)
    flagged = flagged_by_type(confidence, folders, threshold)
    assert max(flagged.values()) <= 0.05 and flagged["shoes"] > 0
    # A single threshold over all photos would flag more than 5 % of the shoes.
    pooled = float(confidence.double().sort().values[int(0.05 * len(confidence))])
    assert flagged_by_type(confidence, folders, pooled)["shoes"] > 0.05


def test_a_negative_head_sample_count_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoint=any.safetensors", "--head-samples=-1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--head-samples cannot be negative" in err
