"""Rolling restart on loopback: two replicas behind HAProxy, each restarted twice under load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.rolling_restart import loopback, rolling_restart

pytestmark = pytest.mark.slow  # HAProxy and 60 s restarts


@pytest.mark.skipif(
    not shutil.which("haproxy"), reason="haproxy is not installed (apt-get install haproxy)"
)
def test_a_rolling_restart_under_16_clients_fails_no_request(tmp_path: Path) -> None:
    with loopback(tmp_path) as (url, restarts):
        report = rolling_restart(url, restarts, seconds=60, rounds=2, n_clients=16)
    assert len(report["restarts"]) == 4, report
    assert report["requests"] > 1000 and report["failed"] == 0, report
