"""The overload benchmark's arithmetic: the server's histogram between two readings, and the
client-seen figures per status."""

from __future__ import annotations

import math

import pytest

from benchmarks.hostile import histogram_summary, per_status

pytestmark = pytest.mark.slow  # server processes flooded


def test_histogram_summary_finds_the_p99_bucket_and_the_slowest() -> None:
    before = {0.1: 10.0, 0.25: 10.0, 0.5: 10.0, 1.0: 10.0, math.inf: 10.0}
    # 1,000 more requests: 985 under 0.1 s, 10 more under 0.25 s, 5 under 1 s.
    after = {0.1: 995.0, 0.25: 1005.0, 0.5: 1005.0, 1.0: 1010.0, math.inf: 1010.0}
    assert histogram_summary(before, after) == {
        "requests": 1000, "p99_at_most_s": 0.25, "slowest_at_most_s": 1.0
    }  # fmt: skip
    assert histogram_summary(after, after) == {"requests": 0}


def test_per_status_splits_the_answers() -> None:
    seen = [(200, 0.2, False)] * 3 + [(503, 0.01, True)] * 99 + [(503, 2.0, True)]
    out = per_status(seen)
    assert out["200"] == {"count": 3, "p50_ms": 200.0, "p99_ms": 200.0, "slowest_ms": 200.0}
    assert out["503"]["count"] == 100 and out["503"]["p50_ms"] == 10.0
    assert out["503"]["p99_ms"] == 2000.0 and out["503"]["slowest_ms"] == 2000.0
