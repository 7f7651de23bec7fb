"""The serving benchmark end to end, in miniature: both servers, both inputs, both generators."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, write_photo_folder

pytestmark = pytest.mark.slow  # wrk against a real server


@pytest.mark.parametrize(
    "generator",
    [
        "python",
        pytest.param("wrk", marks=pytest.mark.skipif(not shutil.which("wrk"), reason="no wrk")),
    ],
)
def test_serve_load_reports_every_run_with_ratios(
    tmp_path: Path, tiny_checkpoint: Path, generator: str
) -> None:
    # Any JPEG photo does for the mechanics; the real ones are for the real benchmark.
    photo = next((write_photo_folder(tmp_path / "photos", per_folder=1) / "train").rglob("*.jpg"))
    out = tmp_path / "report.json"
    cmd = [sys.executable, "benchmarks/serve_load.py", "--duration", "1", "--warmup", "1",
           "--photo", str(photo),
           "--concurrency", "1", "4", "--raw-seconds", "0.1", "--memory-requests", "300",
           "--generator", generator, "--json", str(out)]  # fmt: skip
    env = {**os.environ, "MODEL_CHECKPOINT": str(tiny_checkpoint)}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    rows = report["results"]
    # The Open Inference Protocol request goes to the service only (the naive wrapper has none).
    assert {(r["server"], r["input"], r["concurrency"]) for r in rows} == {
        (server, upload, c)
        for server, inputs in (("service", ("fmnist-28.png", "photo-jpg", "v2-fmnist-png")),
                               ("naive", ("fmnist-28.png", "photo-jpg")))
        for upload in inputs
        for c in (1, 4)
    }  # fmt: skip
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in rows)
    for r in rows:
        if r["server"] == "service":
            assert r["mean_batch"] >= 1 and r["vs_raw_batch_used"] > 0
            assert r["input"] == "v2-fmnist-png" or r["vs_naive"] > 0
    assert set(report["raw"]) == {"as_loaded", "all_cores", "as_served"}
    assert report["memory"]["requests_since_warmup"] >= 300
    # c=1 latencies (PNG against the raw model, photo against the PNG) and memory; no c=32 run
    checked = [c["what"].split(" ", 2)[:2] for c in report["acceptance"]]
    assert checked == [["PNG", "c=1"], ["photo", "c=1"], ["RSS", "growth"]]
    assert report["meta"]["generator"] == generator
    assert "| service | fmnist-28.png | 4 |" in done.stdout


def _row(upload: str, rps: float) -> dict[str, object]:
    return {"server": "service", "input": upload, "concurrency": 32, "rps": rps,
            "p99_ms": 20.0, "errors": 0}  # fmt: skip


@pytest.mark.parametrize("paired", [False, True], ids=["one-run", "paired-medians"])
def test_ratio_bars_rest_on_the_paired_medians_when_there_are_any(paired: bool) -> None:
    from benchmarks.serve_load import acceptance

    rows = [_row("fmnist-28.png", 1000.0), _row("v2-fmnist-png", 850.0), _row("photo-jpg", 480.0)]
    rounds = {
        "rates": {"v2-fmnist-png": [950.0, 980.0, 900.0], "photo-jpg": [520.0, 500.0, 510.0]},
        "median_rps": {"v2-fmnist-png": 950.0, "photo-jpg": 510.0},
        "vs_png": {"fmnist-28.png": 1.0, "v2-fmnist-png": 0.95, "photo-jpg": 0.51},
    }
    checks = {
        c["what"].split(" c=32")[0]: c for c in acceptance(rows, {}, rounds if paired else {})
    }
    assert checks["v2 binary"]["ok"] is paired and checks["photo"]["ok"] is paired
    assert ("median of 3 paired runs" in checks["v2 binary"]["what"]) is paired
