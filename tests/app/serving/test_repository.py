import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.serving.engine import InferenceEngine, build_engine
from app.serving.repository import (
    READY,
    UNAVAILABLE,
    UNLOADING,
    Repository,
    RepositoryError,
    check_name,
    parse_version,
    scan,
)
from model.data.fashion_mnist import Split
from model.network.checkpoint_info import read_checkpoint_info
from tests.helpers import make_settings, put_version


def _builder(tiny_checkpoint: Path) -> Callable[[Path], InferenceEngine]:
    settings = make_settings(tiny_checkpoint, max_batch_size=4)
    return lambda path: build_engine(settings, read_checkpoint_info(path), "cpu")


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll condition on the event loop until it holds; fail after `seconds`."""

    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), seconds)


def _repository(tiny_checkpoint: Path, root: Path, default: str = "a") -> Repository:
    return Repository(lambda: scan(root), _builder(tiny_checkpoint), default)


@pytest.mark.parametrize("name", ["..", "../etc", "/abs", "a/b", "./a", ".hidden", "", "x" * 129])
def test_bad_names_are_400(name: str) -> None:
    with pytest.raises(RepositoryError) as err:
        check_name(name)
    assert err.value.status == 400


@pytest.mark.parametrize("version", ["0", "-1", "1.5", "abc", "01", "../1"])
def test_bad_versions_are_400(version: str) -> None:
    with pytest.raises(RepositoryError) as err:
        parse_version(version)
    assert err.value.status == 400


def test_scan_reads_the_layout_and_skips_what_is_not_a_model(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    put_version(tiny_checkpoint, tmp_path, "a", 1)
    put_version(tiny_checkpoint, tmp_path, "a", 3)
    put_version(tiny_checkpoint, tmp_path, "b", 2)
    (tmp_path / "a" / "4").mkdir()  # a version still being copied: no weights yet
    (tmp_path / "a" / "latest").mkdir()  # not a version
    (tmp_path / ".tmp").mkdir()  # not a name
    found = scan(tmp_path)
    assert {n: sorted(v) for n, v in found.items()} == {"a": [1, 3], "b": [2]}
    assert found["a"][3] == tmp_path / "a" / "3" / "model.safetensors"


def test_load_serves_the_latest_version_and_a_reload_swaps_without_dropping_a_request(
    tiny_checkpoint: Path, tmp_path: Path, test_images: Split
) -> None:
    put_version(tiny_checkpoint, tmp_path, "a", 1)
    image = test_images.images[0].numpy()

    async def run() -> None:
        repo = _repository(tiny_checkpoint, tmp_path)
        first = await repo.load("a")
        assert first.state == READY and repo.resolve(None).version == 1
        # A request holds version 1 while version 2 arrives and is loaded.
        put_version(tiny_checkpoint, tmp_path, "a", 2)
        with repo.use("a") as held:
            second = await repo.load("a")  # answers once 2 serves, while 1 holds the request
            assert second.state == READY and repo.resolve("a").version == 2
            assert held.state == UNLOADING and held.engine is not None
            result = await held.engine.infer([image])  # the held request finishes on 1
        assert len(result.probs[0]) == 10
        await until(lambda: held.engine is None)  # 1 stops once it is idle
        assert held.state == UNAVAILABLE
        assert [(r["version"], r["state"]) for r in repo.index()] == [("1", ""), ("2", READY)]
        await repo.close()

    asyncio.run(run())


def test_a_broken_version_fails_with_its_reason_and_the_old_one_keeps_serving(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    put_version(tiny_checkpoint, tmp_path, "a", 1)

    async def run() -> None:
        repo = _repository(tiny_checkpoint, tmp_path)
        await repo.load("a")
        broken = put_version(tiny_checkpoint, tmp_path, "a", 2)
        data = broken.read_bytes()
        broken.write_bytes(data[: len(data) // 2])  # half-copied
        failed = await repo.load("a")
        assert failed.state == UNAVAILABLE and "sha256" in failed.reason
        assert repo.resolve("a").version == 1
        rows = {r["version"]: r for r in repo.index()}
        assert rows["1"]["state"] == READY and rows["2"]["state"] == UNAVAILABLE
        assert "failed to load" in rows["2"]["reason"]
        await repo.close()

    asyncio.run(run())


def test_unknown_models_are_404_and_the_last_default_cannot_be_unloaded(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    put_version(tiny_checkpoint, tmp_path, "a", 1)
    put_version(tiny_checkpoint, tmp_path, "b", 1)

    async def run() -> None:
        repo = _repository(tiny_checkpoint, tmp_path)
        await repo.load("a")
        for call in (lambda: repo.resolve("nope"), lambda: repo.resolve("a", 7)):
            with pytest.raises(RepositoryError) as err:
                call()
            assert err.value.status == 404 and "a" in str(err.value)
        with pytest.raises(RepositoryError) as err:
            await repo.load("nope")
        assert err.value.status == 404 and "a, b" in str(err.value)
        with pytest.raises(RepositoryError) as err:
            await repo.unload("a")
        assert err.value.status == 409 and "default" in str(err.value)
        await repo.load("b")
        await repo.unload("a")  # another model is ready now
        with pytest.raises(RepositoryError) as err:
            repo.resolve(None)
        assert err.value.status == 404 and "b" in str(err.value)
        await repo.close()

    asyncio.run(run())


def test_load_and_unload_of_one_model_are_serialised(tiny_checkpoint: Path, tmp_path: Path) -> None:
    put_version(tiny_checkpoint, tmp_path, "a", 1)
    put_version(tiny_checkpoint, tmp_path, "b", 1)

    async def run() -> None:
        repo = _repository(tiny_checkpoint, tmp_path)
        await repo.load("a")
        # Five loads and unloads of b at once: each runs alone, the last word is the last call.
        calls = [repo.load("b"), repo.unload("b"), repo.load("b"), repo.load("b"), repo.unload("b")]
        await asyncio.gather(*calls)
        assert repo.ready("b") == {}
        # Every engine of b stops (a replaced one in the background, once idle): a's is left.
        await until(lambda: len([t for t in threading.enumerate() if t.name == "inference"]) == 1)
        await repo.close()

    asyncio.run(run())


def test_requests_go_to_the_named_version(
    tiny_checkpoint: Path, tmp_path: Path, test_images: Split
) -> None:
    put_version(tiny_checkpoint, tmp_path, "a", 1)
    image = test_images.images[:1].numpy()

    async def run() -> None:
        repo = _repository(tiny_checkpoint, tmp_path)
        await repo.load("a")
        with repo.use("a", "1") as entry:
            assert entry.engine is not None
            direct = entry.engine.forward(image)
        assert np.isfinite(direct.probs).all()
        await repo.close()

    asyncio.run(run())


def test_an_empty_name_or_version_is_400_not_the_default() -> None:
    for call in (lambda: check_name(""), lambda: parse_version("")):
        with pytest.raises(RepositoryError) as err:
            call()
        assert err.value.status == 400
