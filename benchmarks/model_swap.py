"""Live model swaps under load: does any request fail, and does memory come back?

    python benchmarks/model_swap.py                 # 16 clients, 60 s, 3 swaps: 0 failures
    python benchmarks/model_swap.py --wrong         # unload, then load: the instrument fails
    python benchmarks/model_swap.py --cycles 20     # RSS after 20 load/unload cycles

One `python -m app.serve` on a model repository (MODEL_CONTROL=explicit) holding the shipped
checkpoint as `fashion` (the default) and as `spare`. 16 keep-alive clients post a photo to
/predict for --seconds while, --rounds times spread over the run, a new version of `fashion`
is copied in and loaded (POST /v2/repository/models/fashion/load: it warms up, takes traffic,
and the version it replaces finishes its requests before it stops). With --wrong, each swap
unloads `fashion` first and loads it after: the requests in between have no model. It prints
every status seen, the failures (anything but 200) and the client-seen latency; the exit
status is 1 when a request failed. --cycles N instead loads and unloads `spare` N times and
prints the server's RSS before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._net import free_port, wait_until_ready  # noqa: E402
from benchmarks.hostile import multipart, sample_photo  # noqa: E402
from benchmarks.rolling_restart import clients, outcome  # noqa: E402
from model.network.checkpoint_info import (  # noqa: E402
    SHIPPED_CHECKPOINT,
    checkpoint_files,
    graph_file,
)

DEFAULT = "fashion"


def install(src: Path, root: Path, name: str, version: int) -> Path:
    """The checkpoint at src (weights, metadata, ONNX graphs) as root/name/version/, written
    under a temporary name and renamed into place, as a deployment would."""
    weights, meta = checkpoint_files(src)
    staging = root / f".{name}-{version}.tmp"
    staging.mkdir(parents=True)
    shutil.copyfile(weights, staging / "model.safetensors")
    data = json.loads(meta.read_text())
    data["weights_file"] = "model.safetensors"
    (staging / "model.json").write_text(json.dumps(data, indent=2) + "\n")
    for precision in ("fp32", "int8"):
        if graph_file(src, precision).is_file():
            target = graph_file(staging / "model.safetensors", precision)
            shutil.copyfile(graph_file(src, precision), target)
    (root / name).mkdir(exist_ok=True)
    final = root / name / str(version)
    staging.rename(final)
    return final


@contextlib.contextmanager
def server(root: Path, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The service on the repository at root (explicit control) on a free port."""
    port = free_port()
    env = {**os.environ, "MODEL_REPOSITORY": str(root), "DEFAULT_MODEL": DEFAULT,
           "MODEL_CONTROL": "explicit", "LOG_LEVEL": "warning"}  # fmt: skip
    cmd = [sys.executable, "-m", "app.serve", "--port", str(port), "--no-access-log"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(proc, f"{url}/health/ready", timeout_s=60)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def call(url: str, path: str) -> int:
    """POST path (a repository call); its status."""
    request = urllib.request.Request(url + path, data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def swaps(url: str, root: Path, src: Path, seconds: float, rounds: int, n_clients: int,
          wrong: bool, photo: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Clients for `seconds`; `rounds` swaps of the default model's version, spread from 3 s
    to 3 s before the end."""
    body = multipart(sample_photo(photo))
    stop = threading.Event()
    results: list[list[tuple[float, int, float]]] = []
    load = threading.Thread(target=lambda: results.append(clients(url, body, n_clients, stop)))
    start = time.monotonic()
    load.start()
    done: list[dict[str, Any]] = []
    try:
        every = max(0.0, seconds - 6) / rounds  # the swaps spread over the run
        for i, version in enumerate(range(2, 2 + rounds)):
            time.sleep(max(0.0, start + 3 + i * every - time.monotonic()))
            began = time.monotonic() - start
            install(src, root, DEFAULT, version)
            if wrong:  # the old version goes before the new one is ready
                statuses = [call(url, f"/v2/repository/models/{DEFAULT}/unload")]
                statuses.append(call(url, f"/v2/repository/models/{DEFAULT}/load"))
            else:
                statuses = [call(url, f"/v2/repository/models/{DEFAULT}/load")]
            shutil.rmtree(root / DEFAULT / str(version - 1))
            ended = round(time.monotonic() - start, 1)
            done.append({"version": version, "from_s": round(began, 1), "done_s": ended,
                         "calls": statuses})  # fmt: skip
        time.sleep(max(0.0, seconds - (time.monotonic() - start)))
    finally:
        stop.set()
        load.join()
    return {
        "way": "unload, then load" if wrong else "load (warm up, take over, retire the old)",
        "seconds": round(time.monotonic() - start, 1),
        "clients": n_clients,
        "swaps": done,
        **outcome(results[0], start),
    }


def cycles(url: str, pid: int, n: int) -> dict[str, Any]:
    """RSS before and after n load/unload cycles of the `spare` model."""
    for _ in range(2):  # the allocator's first growth is not a leak
        call(url, "/v2/repository/models/spare/unload")
        call(url, "/v2/repository/models/spare/load")
    before = rss_mb(pid)
    statuses: Counter[int] = Counter()
    for _ in range(n):
        statuses[call(url, "/v2/repository/models/spare/unload")] += 1
        statuses[call(url, "/v2/repository/models/spare/load")] += 1
    after = rss_mb(pid)
    return {"cycles": n, "calls": {str(k): v for k, v in statuses.items()},
            "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "growth_mb": round(after - before, 1)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/model_swap.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--seconds", type=float, default=60.0, help="how long the clients post")
    p.add_argument("--rounds", type=int, default=3, help="swaps of the default model")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients")
    p.add_argument("--wrong", action="store_true", help="swap by unloading first")
    p.add_argument("--cycles", type=int, default=0, help="load/unload cycles to measure RSS over")
    p.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT, help="what to serve")
    p.add_argument("--photo", type=Path, default=None, help="the photo to post")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repository"
        root.mkdir()
        install(args.checkpoint, root, DEFAULT, 1)
        install(args.checkpoint, root, "spare", 1)
        with server(root, Path(tmp) / "server.log") as (url, proc):
            if args.cycles:
                report = cycles(url, proc.pid, args.cycles)
            else:
                report = swaps(url, root, args.checkpoint, args.seconds, args.rounds,
                               args.clients, args.wrong, args.photo)  # fmt: skip
    print(json.dumps(report))
    return 1 if report.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
