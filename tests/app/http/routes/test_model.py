from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.http.routes.model import _summary
from model.network.shapes import layer_rows, resnet18_layers
from tests.helpers import SEED_SHAPES_224


def test_model_info_reports_checkpoint_and_device(
    client: TestClient, tiny_checkpoint: Path
) -> None:
    r = client.get("/model")
    body = r.json()
    # The file's name only: the server's directories are nobody's business.
    assert body["checkpoint_file"] == tiny_checkpoint.name
    assert str(tiny_checkpoint.parent) not in r.text
    assert body["architecture"] == "d2l-resnet18"
    assert len(body["classes"]) == 10 and body["classes"][9] == "Ankle boot"
    assert (body["input_size"], body["in_channels"], body["device"]) == (28, 1, "cpu")
    assert body["dtype"] == "float32" and body["backend"].startswith("onnxruntime")
    assert body["checkpoint"] == body["metadata"]["weights_sha256"][:12]
    assert {"recipe", "metrics", "normalization", "torch_version"} <= set(body["metadata"])


def test_summary_defaults_to_the_served_input_size(client: TestClient) -> None:
    body = client.get("/model/summary").json()
    assert body["input_shape"] == [1, 1, 28, 28]
    assert body["total_params"] == body["trainable_params"] == 11_178_378
    assert [row["output_shape"] for row in body["layers"]][-1] == [1, 10]


def test_summary_at_224_matches_the_seed(client: TestClient) -> None:
    body = client.get("/model/summary?input_size=224").json()
    rows = [(row["type"], tuple(row["output_shape"])) for row in body["layers"]]
    assert rows == SEED_SHAPES_224
    assert sum(row["params"] for row in body["layers"]) == body["total_params"]


def test_nested_summary_lists_residual_blocks(client: TestClient) -> None:
    body = client.get("/model/summary?input_size=96&depth=2").json()
    assert [r["name"] for r in body["layers"] if r["type"] == "Residual"][:2] == ["1.0", "1.1"]


@pytest.mark.parametrize("query", ["input_size=8", "input_size=4096", "input_size=big", "depth=9"])
def test_summary_bounds_are_422(client: TestClient, query: str) -> None:
    r = client.get(f"/model/summary?{query}")
    assert r.status_code == 422
    assert query.split("=")[0] in r.json()["detail"]


@pytest.mark.parametrize(("size", "depth"), [(16, 1), (96, 2), (512, 3)])
def test_summary_answers_the_arithmetic_rows(size: int, depth: int) -> None:
    # The rows themselves are checked against a real forward pass in tests/model/network.
    got = _summary(10, 1, size, depth)
    expected = layer_rows(resnet18_layers(10, 1), size, 1, depth)
    assert [(r.name, r.type, tuple(r.output_shape), r.params) for r in got.layers] == [
        (r.name, r.type, tuple(r.output_shape), r.params) for r in expected
    ]
    assert got.input_shape == [1, 1, size, size] and got.depth == depth
