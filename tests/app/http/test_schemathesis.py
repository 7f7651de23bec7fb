"""Schemathesis (--checks all) against the running service, with real and hostile uploads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, served

pytestmark = pytest.mark.slow  # schemathesis, a minute a run

KEY = "s3cret-key"


@pytest.mark.parametrize("api_key", [None, KEY], ids=["open", "with-api-key"])
def test_schemathesis_finds_no_failure(
    tiny_checkpoint: Path, tmp_path: Path, api_key: str | None
) -> None:
    env = {"API_KEY": api_key} if api_key else {}
    with served(tiny_checkpoint, tmp_path / "server.log", **env) as server:
        cmd = [
            sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
            "--checks", "all", "--max-examples", "60", "--seed", "20261129", "--no-color",
            "--output-truncate", "true", "--report", "junit", "--report-dir", str(tmp_path),
        ]  # fmt: skip
        if api_key:
            cmd += ["--header", f"X-API-Key: {api_key}"]
        environ = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_uploads"}
        run = subprocess.run(
            cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600
        )
        log = server.log_text()
    summary = run.stdout[run.stdout.find("SUMMARY") :]
    assert run.returncode == 0, summary[-3000:] or run.stderr[-3000:]
    assert "No issues found" in run.stdout and "Traceback" not in log
