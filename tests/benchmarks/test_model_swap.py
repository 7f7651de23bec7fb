"""Live model swaps under 16 clients, the short form of benchmarks/model_swap.py: the right way
fails no request, the wrong way (unload, then load) is caught, and load/unload cycles give
their memory back."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.model_swap import DEFAULT, cycles, install, server, swaps
from model.network.checkpoint_info import SHIPPED_CHECKPOINT

pytestmark = pytest.mark.slow  # a real server under load for 15 s a case


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "repository"
    root.mkdir()
    install(SHIPPED_CHECKPOINT, root, DEFAULT, 1)
    install(SHIPPED_CHECKPOINT, root, "spare", 1)
    return root


@pytest.mark.parametrize("wrong", [False, True], ids=["load-then-retire", "unload-then-load"])
def test_swaps_under_load(root: Path, tmp_path: Path, wrong: bool) -> None:
    with server(root, tmp_path / "server.log") as (url, _):
        report = swaps(url, root, SHIPPED_CHECKPOINT, seconds=15, rounds=3, n_clients=16,
                       wrong=wrong)  # fmt: skip
    assert len(report["swaps"]) == 3 and report["requests"] > 500, report
    if wrong:  # the instrument sees the gap a careless swap leaves
        assert report["failed"] > 0 and set(report["statuses"]) == {"200", "404"}, report
    else:
        assert report["failed"] == 0, report
        assert all(s["calls"] == [200] for s in report["swaps"]), report


def test_load_unload_cycles_give_their_memory_back(root: Path, tmp_path: Path) -> None:
    with server(root, tmp_path / "server.log") as (url, proc):
        report = cycles(url, proc.pid, 10)
    assert report["calls"] == {"200": 20} and report["growth_mb"] < 50, report
