"""The peer servers the load benchmark measures this service against: TorchServe and LitServe.

Each runs the shipped network with the service's own photo preprocessing (benchmarks/peers/), in
its own virtual environment, .venv-peers, built here from benchmarks/peers/requirements.txt (the
pinned peer versions) and constraints.txt (the same torch as the service). It is rebuilt when
either file changes. TorchServe needs Java 17 on PATH (`apt-get install openjdk-17-jre-headless`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks._net import free_port, wait_until_ready

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "benchmarks" / "peers"
VENV = ROOT / ".venv-peers"
REQUIREMENTS = PEERS / "requirements.txt"
CONSTRAINTS = ROOT / "constraints.txt"


@dataclass(frozen=True)
class PeerConfig:
    """How a peer batches and parallelises: workers x threads each, batch size, batch delay."""

    workers: int
    threads: int
    batch: int
    delay_ms: int

    def __str__(self) -> str:
        batching = f"batch {self.batch}, {self.delay_ms} ms" if self.batch > 1 else "no batching"
        return f"{self.workers} worker x {self.threads} thread, {batching}"


# What a user would try, on this machine's 2 cores: one process on both cores or one per core,
# with and without dynamic batching. The benchmark runs each briefly and keeps the fastest.
TORCHSERVE_CONFIGS = (
    PeerConfig(1, 2, 1, 0),
    PeerConfig(2, 1, 1, 0),
    PeerConfig(1, 2, 32, 5),
    PeerConfig(2, 1, 16, 5),
)
# LitServe's API server is a process of its own: one inference worker on one thread leaves it a
# core.
LITSERVE_CONFIGS = (
    PeerConfig(1, 1, 1, 0),
    PeerConfig(1, 2, 1, 0),
    PeerConfig(1, 1, 16, 5),
    PeerConfig(2, 1, 16, 5),
)


def _stamp() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()


def peer_venv() -> Path:
    """The peers' Python, building .venv-peers first when it is missing or out of date."""
    python, stamp = VENV / "bin" / "python", VENV / ".requirements-sha256"
    if python.exists() and stamp.is_file() and stamp.read_text() == _stamp():
        return python
    print(f"building {VENV.name} (TorchServe, LitServe; torch from constraints.txt)", flush=True)
    subprocess.run([shutil.which("python3.11") or "python3", "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS)]
    subprocess.run([*pip, "torch", "torchvision"], check=True)  # the local wheels first
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(_stamp())
    return python


def versions(python: Path) -> dict[str, str]:
    """The installed peer versions, as the report names them."""
    code = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
        "('torchserve', 'litserve', 'torch')}))"
    )
    return dict(json.loads(subprocess.check_output([str(python), "-c", code], text=True)))


def group_cpu(pgid: int) -> float:
    """User + system CPU seconds so far of the live processes in a process group."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _serving(
    cmd: list[str], cwd: Path, env: dict[str, str], url: str, probe: bytes, ctype: str
) -> Iterator[int]:
    """Run `cmd` in a process group of its own, its output to cwd/server.log; yield its pid once
    `url` answers `probe`, then end the group (the server and every worker it started)."""
    log_path = cwd / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            try:
                wait_until_ready(proc, url, 180, probe, ctype)
            except RuntimeError as exc:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{exc}\n--- the server's output ends ---\n{tail}") from exc
            yield proc.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            time.sleep(1)  # workers of the group release the cores and ports


@contextlib.contextmanager
def torchserve(
    python: Path,
    config: PeerConfig,
    probe: bytes,
    ctype: str,
    handler_file: str = "torchserve_handler.py",
) -> Iterator[tuple[str, int]]:
    """TorchServe with `config` and the handler in benchmarks/peers/handler_file; yields
    (prediction URL, pid of its process group)."""
    bin_dir, port = python.parent, free_port()
    with tempfile.TemporaryDirectory(prefix="torchserve-") as tmp:
        store = Path(tmp, "store")
        store.mkdir()
        handler = PEERS / handler_file
        archiver = [str(bin_dir / "torch-model-archiver"), "--model-name", "fashion"]
        archiver += ["--version", "1.0", "--handler", str(handler), "--export-path", str(store)]
        subprocess.run(archiver, check=True)
        model = {
            "defaultVersion": True,
            "marName": "fashion.mar",
            "minWorkers": config.workers,
            "maxWorkers": config.workers,
            "batchSize": config.batch,
            "maxBatchDelay": config.delay_ms,
            "responseTimeout": 120,
        }
        properties = {
            "inference_address": f"http://127.0.0.1:{port}",
            "management_address": f"http://127.0.0.1:{free_port()}",
            "metrics_address": f"http://127.0.0.1:{free_port()}",
            "disable_token_authorization": "true",
            "install_py_dep_per_model": "false",
            "model_store": str(store),
            "load_models": "fashion.mar",
            "models": json.dumps({"fashion": {"1.0": model}}),
        }
        cfg = Path(tmp, "config.properties")
        cfg.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FASHION_ROOT": str(ROOT),
            "PEER_THREADS": str(config.threads),
            # TorchServe refuses to start while its pid file in the temp folder names a live
            # process: one folder per instance, so a previous one still exiting cannot block it.
            "TMPDIR": tmp,
        }
        cmd = [str(bin_dir / "torchserve"), "--start", "--foreground", "--ncs"]
        cmd += ["--ts-config", str(cfg), "--model-store", str(store), "--disable-token-auth"]
        url = f"http://127.0.0.1:{port}/predictions/fashion"
        with _serving(cmd, Path(tmp), env, url, probe, ctype) as pid:
            yield url, pid


@contextlib.contextmanager
def litserve(
    python: Path, config: PeerConfig, probe: bytes, ctype: str
) -> Iterator[tuple[str, int]]:
    """LitServe with `config`; yields (prediction URL, pid of its process group)."""
    port = free_port()
    cmd = [str(python), str(PEERS / "litserve_server.py"), "--port", str(port)]
    cmd += ["--max-batch-size", str(config.batch), "--batch-timeout", str(config.delay_ms / 1e3)]
    cmd += ["--workers", str(config.workers)]
    env = {**os.environ, "PEER_THREADS": str(config.threads)}
    url = f"http://127.0.0.1:{port}/predict"
    with (
        tempfile.TemporaryDirectory(prefix="litserve-") as tmp,
        _serving(cmd, Path(tmp), env, url, probe, ctype) as pid,
    ):
        yield url, pid


@contextlib.contextmanager
def torchserve_ort(
    python: Path, config: PeerConfig, probe: bytes, ctype: str
) -> Iterator[tuple[str, int]]:
    """TorchServe serving the service's shipped INT8 graph with ONNX Runtime (the same graph,
    like for like); yields (prediction URL, pid of its process group)."""
    with torchserve(python, config, probe, ctype, "torchserve_ort_handler.py") as served:
        yield served


# The like-for-like peer's search: batching and workers as above, and bigger batches, since an
# INT8 forward pass of 32 costs about what 4 single ones do.
TORCHSERVE_ORT_CONFIGS = (
    PeerConfig(1, 2, 1, 0),
    PeerConfig(2, 1, 1, 0),
    PeerConfig(1, 2, 32, 5),
    PeerConfig(1, 2, 64, 5),
    PeerConfig(2, 1, 16, 5),
    PeerConfig(2, 1, 32, 5),
)
PEER_SERVERS = {
    "torchserve": (torchserve, TORCHSERVE_CONFIGS),
    "torchserve-ort": (torchserve_ort, TORCHSERVE_ORT_CONFIGS),
    "litserve": (litserve, LITSERVE_CONFIGS),
}
