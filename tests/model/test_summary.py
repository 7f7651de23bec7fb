import pytest

from model.network.net import resnet18
from model.summary import layer_summary, main
from tests.helpers import SEED_SHAPES_224


def test_top_level_rows_match_the_seed() -> None:
    rows = layer_summary(resnet18(), 224)
    assert [(r.type, r.output_shape) for r in rows] == SEED_SHAPES_224
    assert sum(r.params for r in rows) == 11_178_378


def test_nested_rows_reach_residual_blocks() -> None:
    rows = layer_summary(resnet18(), 96, depth=2)
    residuals = [r for r in rows if r.type == "Residual"]
    assert len(residuals) == 8
    assert residuals[-1].output_shape == (1, 512, 3, 3)
    assert rows[-1].name == "7" and rows[-1].output_shape == (1, 10)
    assert sum(r.params for r in rows) == 11_178_378


def test_cli_prints_the_seed_shapes(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--input-size", "224"])
    lines = capsys.readouterr().out.splitlines()[1:-1]
    assert len(lines) == len(SEED_SHAPES_224)
    for line, (kind, shape) in zip(lines, SEED_SHAPES_224, strict=True):
        assert kind in line and "(" + ", ".join(map(str, shape)) + ")" in line
