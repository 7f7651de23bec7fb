"""Temperature scaling, calibration error, AUROC and the none-of-the-ten threshold."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model.calibrate import (
    auroc,
    expected_calibration_error,
    fit_garment_head,
    fit_temperature,
    flag_threshold,
    main,
    set_nll,
)
from model.network.checkpoint import copy_checkpoint, load_checkpoint
from model.network.checkpoint_info import read_checkpoint_info
from tests.helpers import write_photo_folder

pytestmark = pytest.mark.slow  # the calibration CLI


def test_fit_temperature_recovers_the_temperature_that_made_the_labels() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(20_000, 10, generator=gen) * 3
    labels = torch.multinomial((logits / 2.5).softmax(1), 1, generator=gen).squeeze(1)
    sets = torch.nn.functional.one_hot(labels, 10).bool()
    fitted = fit_temperature(logits, sets)
    assert fitted == pytest.approx(2.5, rel=0.05)
    assert set_nll(logits, sets, fitted) < min(set_nll(logits, sets, t) for t in (1.0, 2.0, 3.0))


def test_set_nll_by_hand() -> None:
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0]]))  # probabilities 1/6, 2/6, 3/6
    sets = torch.tensor([[False, True, True]])
    assert set_nll(logits, sets) == pytest.approx(-math.log(5 / 6))
    # At T = 2 the probabilities are proportional to 1, sqrt 2, sqrt 3.
    root = 1 + math.sqrt(2) + math.sqrt(3)
    expected = -math.log((math.sqrt(2) + math.sqrt(3)) / root)
    assert set_nll(logits, sets, 2.0) == pytest.approx(expected)


def test_ece_by_hand() -> None:
    confidence = torch.tensor([0.9, 0.9, 0.6, 0.6])
    correct = torch.tensor([True, False, True, True])
    # Two bins, half the photos each: |0.5 - 0.9| / 2 + |1.0 - 0.6| / 2.
    assert expected_calibration_error(confidence, correct) == pytest.approx(0.4)
    assert expected_calibration_error(torch.tensor([0.75] * 4), correct) == pytest.approx(0.0)


def test_auroc_by_hand() -> None:
    assert auroc(torch.tensor([0.9, 0.8]), torch.tensor([0.85, 0.1])) == pytest.approx(0.75)
    assert auroc(torch.tensor([0.5]), torch.tensor([0.5])) == pytest.approx(0.5)


@pytest.mark.parametrize("n", [1, 19, 20, 21, 100, 617])
def test_the_flag_raises_at_most_five_percent_of_in_class_photos(n: int) -> None:
    confidence = torch.rand(n, generator=torch.Generator().manual_seed(n))
    threshold = flag_threshold(confidence)
    flagged = int((confidence < threshold).sum())
    assert flagged <= 0.05 * n
    assert flagged == math.floor(0.05 * n)  # and no fewer than the budget allows


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
