"""Shared fixtures: small checkpoints, a short real training run, real images, app clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from app.http.factory import create_app
from model.data.fashion_mnist import Split, load_split
from model.network.checkpoint_info import SHIPPED_CHECKPOINT
from tests.helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TINY_TEST,
    TINY_TRAIN,
    make_settings,
    png_bytes,
    random_checkpoint,
    served,
)


@pytest.fixture(autouse=True)
def _two_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight checkpoint at the native 28x28 input size."""
    return random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", seed=0)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Output folder of `python -m model.train` run for 1 epoch on 512 real images."""
    from model.train import main

    out = tmp_path_factory.mktemp("run")
    main(
        [
            "--epochs=1",
            "--resize=28",
            "--batch-size=64",
            f"--train-subset={TINY_TRAIN}",
            f"--test-subset={TINY_TEST}",
            f"--out={out}",
            "--no-progress",
        ]
    )
    return out


@pytest.fixture(scope="session")
def test_images() -> Split:
    """The first 64 real Fashion-MNIST test images."""
    return load_split("test").subset(64)


@pytest.fixture(scope="session")
def boot_png(test_images: Split) -> bytes:
    """A real 28x28 Fashion-MNIST test image (an ankle boot) as PNG."""
    return png_bytes(test_images.images[0].numpy())


@pytest.fixture(scope="module")
def client(tiny_checkpoint: Path) -> Iterator[TestClient]:
    """A started app (lifespan run, model warmed up) on the random-weight checkpoint, shared by
    a module's tests (one start costs 0.35 s); a test that changes the app builds its own."""
    with TestClient(create_app(make_settings(tiny_checkpoint))) as c:
        yield c


@pytest.fixture(scope="session")
def shipped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server process on the shipped, trained checkpoint; its URL."""
    log = tmp_path_factory.mktemp("shipped") / "server.log"
    with served(SHIPPED_CHECKPOINT, log, LOG_LEVEL="warning") as server:
        yield server.url


@pytest.fixture(scope="session")
def live_server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server process (`python -m app.serve`) on the random-weight checkpoint; its URL."""
    log = tmp_path_factory.mktemp("live") / "server.log"
    with served(tiny_checkpoint, log, LOG_LEVEL="warning") as server:
        yield server.url


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium under Playwright (no browser download); a Browser."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed: apt-get install chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


_left_out: list[pytest.Item] = []


def pytest_deselected(items: list[pytest.Item]) -> None:
    _left_out.extend(i for i in items if i.get_closest_marker("slow"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the slow tests a `-m "not slow"` run left out: `make test` runs them."""
    if _left_out:
        terminalreporter.section(f"{len(_left_out)} slow tests left out (make test runs them)")
        for item in _left_out:
            terminalreporter.write_line(item.nodeid)
