"""The model repository through the service: /models, ?model= on the prediction routes, the Open
Inference Protocol's repository extension (called by tritonclient against a real server), the
control modes and the bad-input answers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from app.http.factory import create_app
from benchmarks.model_swap import install
from model.network.checkpoint import update_metadata
from model.network.checkpoint_info import SHIPPED_CHECKPOINT
from tests.helpers import make_settings, poll, put_version, random_checkpoint, served

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second random-weight checkpoint: its answers differ from tiny_checkpoint's."""
    return random_checkpoint(tmp_path_factory.mktemp("other") / "other", seed=1)


@pytest.fixture
def root(tmp_path: Path, tiny_checkpoint: Path, other_checkpoint: Path) -> Path:
    """A repository of two models: a (version 1) and b (version 1)."""
    put_version(tiny_checkpoint, tmp_path / "repo", "a", 1)
    put_version(other_checkpoint, tmp_path / "repo", "b", 1)
    return tmp_path / "repo"


def _client(root: Path, tiny_checkpoint: Path, **settings: object) -> TestClient:
    options = {"model_repository": root, "default_model": "a", "model_control": "explicit"}
    return TestClient(create_app(make_settings(tiny_checkpoint, **{**options, **settings})))


@pytest.fixture
def client(root: Path, tiny_checkpoint: Path) -> Iterator[TestClient]:
    with _client(root, tiny_checkpoint) as c:
        yield c


def _predict(client: TestClient, boot_png: bytes, query: str = "") -> dict:
    r = client.post(f"/predict{query}", files={"image": ("b.png", boot_png)})
    assert r.status_code == 200, r.text
    return r.json()


def test_models_lists_every_version_with_its_input_and_backend(client: TestClient) -> None:
    body = client.get("/models").json()
    assert body["default"] == "a" and body["control"] == "explicit"
    rows = {m["name"]: m for m in body["models"]}
    assert set(rows) == {"a", "b"}
    for row in rows.values():
        assert row["version"] == "1" and row["state"] == "READY"
        assert row["input"] == {"channels": 1, "size": 28, "view": "silhouette"}
        assert row["backend"] and len(row["checkpoint"]) == 12


def test_each_answer_names_the_model_and_version_that_gave_it(
    client: TestClient, boot_png: bytes
) -> None:
    default, a, b = (_predict(client, boot_png, q) for q in ("", "?model=a", "?model=b&version=1"))
    assert default["model"]["name"] == a["model"]["name"] == "a"
    assert b["model"] == {**b["model"], "name": "b", "version": "1"}
    assert a["top_k"] == default["top_k"] and a["top_k"] != b["top_k"]
    batch = client.post("/predict/batch?model=b", files=[("images", ("b.png", boot_png))]).json()
    assert batch["model"]["name"] == "b" and batch["results"][0]["label"] == b["label"]
    v2 = client.post(
        "/v2/models/b/versions/1/infer",
        json={"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8",
                          "data": [0] * 784}]},
    ).json()  # fmt: skip
    assert v2["model_name"] == "b" and v2["model_version"] == "1"
    info = client.get("/model?model=b").json()
    assert info["checkpoint"] == b["model"]["checkpoint"] != a["model"]["checkpoint"]


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ("?model=nope", 404, "ready models: a, b"),
        ("?model=a&version=2", 404, "no ready version 2"),
        ("?model=..%2F..%2Fetc", 400, "not a model name"),
        ("?model=%2Fetc%2Fpasswd", 400, "not a model name"),
        ("?model=a&version=..", 400, "not a version"),
    ],
)
def test_unknown_and_bad_names_are_404_and_400(
    client: TestClient, boot_png: bytes, query: str, status: int, says: str
) -> None:
    for path, field in (("/predict", "image"), ("/predict/batch", "images")):
        r = client.post(path + query, files={field: ("b.png", boot_png)})
        assert r.status_code == status and says in r.json()["detail"], r.text
    r = client.get(f"/model/summary{query}")
    assert r.status_code == status and says in r.json()["detail"]


def test_load_unload_and_the_last_default(client: TestClient, boot_png: bytes) -> None:
    _predict(client, boot_png, "?model=b")
    b_series = 'fashion_batch_size_count{model="b",version="1"} 1.0'
    assert b_series in client.get("/metrics").text  # each model's own series
    assert client.post("/v2/repository/models/b/unload").status_code == 200
    assert 'model="b"' not in client.get("/metrics").text  # gone with it
    assert client.get("/v2/models/b/ready").status_code == 404
    assert client.post("/predict?model=b", files={"image": ("b.png", boot_png)}).status_code == 404
    r = client.post("/v2/repository/models/a/unload")
    assert r.status_code == 409 and "default" in r.json()["error"]
    assert _predict(client, boot_png)["model"]["name"] == "a"  # still serving
    assert client.post("/v2/repository/models/b/load").status_code == 200
    assert _predict(client, boot_png, "?model=b")["model"]["name"] == "b"
    r = client.post("/v2/repository/models/..%2Fx/load")
    assert r.status_code in (400, 404)  # a traversal never reaches the disk
    r = client.post("/v2/repository/models/c/load")
    assert r.status_code == 404 and "a, b" in r.json()["error"]


def test_a_broken_version_keeps_the_old_one_serving(
    client: TestClient, root: Path, other_checkpoint: Path, boot_png: bytes
) -> None:
    weights = put_version(other_checkpoint, root, "b", 2)
    weights.write_bytes(weights.read_bytes()[:1000])  # half-copied
    r = client.post("/v2/repository/models/b/load")
    assert r.status_code == 400 and "version 2 failed to load" in r.json()["error"]
    index = {(m["name"], m["version"]): m for m in client.post("/v2/repository/index").json()}
    assert index["b", "1"]["state"] == "READY" and index["b", "2"]["state"] == "UNAVAILABLE"
    assert "sha256" in index["b", "2"]["reason"]
    assert _predict(client, boot_png, "?model=b")["model"]["version"] == "1"


@pytest.mark.parametrize("control", ["none", "poll"])
def test_load_and_unload_calls_need_explicit_control(
    root: Path, tiny_checkpoint: Path, control: str
) -> None:
    with _client(root, tiny_checkpoint, model_control=control) as c:
        for call in ("load", "unload"):
            r = c.post(f"/v2/repository/models/b/{call}")
            assert r.status_code == 409 and f"MODEL_CONTROL={control}" in r.json()["error"]
        assert c.post("/v2/repository/index").status_code == 200


def test_management_needs_the_key(root: Path, tiny_checkpoint: Path) -> None:
    with _client(root, tiny_checkpoint, api_key=KEY) as c:
        for path in ("/v2/repository/index", "/v2/repository/models/b/unload"):
            assert c.post(path).status_code == 401
        assert c.get("/models").status_code == 401
        assert c.get("/models", headers={"X-API-Key": KEY}).status_code == 200
        r = c.post("/v2/repository/models/b/unload", headers={"X-API-Key": KEY})
        assert r.status_code == 200


def test_poll_picks_up_a_version_renamed_into_place(
    root: Path, tiny_checkpoint: Path, other_checkpoint: Path, tmp_path: Path, boot_png: bytes
) -> None:
    with _client(root, tiny_checkpoint, model_control="poll", poll_s=0.2) as c:
        # Written under a temporary name, then renamed: the version appears whole.
        staging = tmp_path / "staging"
        put_version(other_checkpoint, staging, "a", 1)
        shutil.move(staging / "a" / "1", root / "a" / "2")
        poll(
            lambda: _predict(c, boot_png)["model"]["version"] == "2",
            seconds=2 * 0.2 + 5,
            every=0.05,
        )
        assert _predict(c, boot_png)["model"]["checkpoint"] != ""
        index = {(m["name"], m["version"]): m["state"] for m in c.get("/models").json()["models"]}
        assert index["a", "2"] == "READY" and index["a", "1"] == ""  # retired, still on disk
        shutil.rmtree(root / "b")
        poll(lambda: "b" not in {m["name"] for m in c.get("/models").json()["models"]}, 5, 0.05)


def test_poll_never_serves_a_half_written_version_and_takes_it_once_whole(
    root: Path, tiny_checkpoint: Path, other_checkpoint: Path, boot_png: bytes
) -> None:
    with _client(root, tiny_checkpoint, model_control="poll", poll_s=0.2) as c:
        # A copy still being written in place: the poll never sees it whole before the end (it
        # is made a third whole aside, then moved in).
        staged = put_version(other_checkpoint, root.parent / "staging", "a", 2)
        whole = staged.read_bytes()
        staged.write_bytes(whole[: len(whole) // 3])
        weights = staged.parent.rename(root / "a" / "2") / staged.name

        def state_of_2() -> str:
            rows = c.get("/models").json()["models"]
            return next(m["state"] for m in rows if (m["name"], m["version"]) == ("a", "2"))

        poll(lambda: state_of_2() == "UNAVAILABLE", 5, 0.05)  # tried, refused, never served
        assert _predict(c, boot_png)["model"]["version"] == "1"
        weights.write_bytes(whole)  # the copy completes: its files change, poll tries again
        poll(lambda: _predict(c, boot_png)["model"]["version"] == "2", 5, 0.05)


def test_a_repository_needs_a_default_when_it_holds_several(
    root: Path, tiny_checkpoint: Path
) -> None:
    with pytest.raises(SystemExit, match="set DEFAULT_MODEL: the repository holds a, b"):
        create_app(make_settings(tiny_checkpoint, model_repository=root))
    with pytest.raises(SystemExit, match="DEFAULT_MODEL c has no"):
        create_app(make_settings(tiny_checkpoint, model_repository=root, default_model="c"))


@pytest.mark.slow  # a real server process
def test_tritonclient_drives_the_repository(
    root: Path, tiny_checkpoint: Path, tmp_path: Path, boot_png: bytes
) -> None:
    env = {"MODEL_REPOSITORY": str(root), "DEFAULT_MODEL": "a", "MODEL_CONTROL": "explicit"}
    with served(tiny_checkpoint, tmp_path / "server.log", **env) as server:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        index = client.get_model_repository_index()
        assert {(m["name"], m["state"]) for m in index} == {("a", "READY"), ("b", "READY")}
        client.unload_model("b")
        assert not client.is_model_ready("b") and client.is_model_ready("a")
        client.load_model("b")
        assert client.is_model_ready("b") and client.is_model_ready("b", "1")
        with pytest.raises(InferenceServerException) as err:
            client.load_model("nope")
        assert err.value.status() == "404"
        # Inference by name and by version: the class /predict?model=b gives.
        url = f"{server.url}/predict?model=b"
        expected = httpx.post(url, files={"image": ("b.png", boot_png)}).json()["class_id"]
        image = triton.InferInput("image", [1], "BYTES")
        image.set_data_from_numpy(np.array([boot_png], dtype=object))
        for version in ("", "1"):
            answer = client.infer("b", [image], model_version=version)
            probs = answer.as_numpy("probabilities")
            assert int(probs[0].argmax()) == expected


@pytest.mark.slow  # a real server process
def test_a_torch_free_service_serves_a_repository_of_two(tmp_path: Path, boot_png: bytes) -> None:
    """As `make serve` on a CPU and the CPU image run it: no torch, the graphs beside each
    version (the shipped INT8 one), both models answering."""
    root = tmp_path / "repository"
    root.mkdir()
    for name in ("fashion", "second"):
        install(SHIPPED_CHECKPOINT, root, name, 1)
        (root / name / "1" / "model.onnx").unlink(missing_ok=True)  # a clone has the INT8 one
    env = {"MODEL_REPOSITORY": str(root), "DEFAULT_MODEL": "fashion"}
    with served(SHIPPED_CHECKPOINT, tmp_path / "server.log", without=("torch",), **env) as server:
        for name in ("fashion", "second"):
            r = httpx.post(
                f"{server.url}/predict?model={name}", files={"image": ("b.png", boot_png)}
            )
            assert r.status_code == 200 and r.json()["model"]["name"] == name, r.text
        rows = httpx.get(f"{server.url}/models").json()["models"]
        assert [(m["name"], m["state"]) for m in rows] == [
            ("fashion", "READY"),
            ("second", "READY"),
        ]
        assert all("int8" in m["backend"] for m in rows)
        assert "Traceback" not in server.log_text()


def test_a_checkpoint_the_service_cannot_feed_is_refused_with_its_reason(
    client: TestClient, root: Path, tiny_checkpoint: Path
) -> None:
    photo_view = put_version(tiny_checkpoint, root, "photos", 1)
    update_metadata(photo_view, view="photo")  # it would need the photo, not the silhouette
    r = client.post("/v2/repository/models/photos/load")
    assert r.status_code == 400 and "feeds silhouettes only" in r.json()["error"]
    with pytest.raises(SystemExit, match="feeds silhouettes only"):
        create_app(make_settings(photo_view))
