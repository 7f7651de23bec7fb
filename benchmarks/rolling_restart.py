"""Rolling restart behind a real load balancer: does any request fail?

    python benchmarks/rolling_restart.py                     # loopback: 2 replicas + HAProxy
    python benchmarks/rolling_restart.py --compose PROJECT   # the compose profile `replicas`

Two replicas of the service (`python -m app.serve`, DRAIN_S=2) behind HAProxy with
deploy/haproxy/haproxy.cfg; 16 clients post a photo through the proxy for --seconds, while each
replica in turn is sent SIGTERM, waited for, started again and waited for until ready, --rounds
times. It prints every status seen, the failures (anything but 200) and the client-seen
latency; the exit status is 1 when a request failed. With --compose, the replicas are the
containers `replica-1` and `replica-2` of that compose project (docker-compose restart, which
sends SIGTERM), and the proxy is the project's `proxy` on --url.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._net import free_port, wait_until_ready  # noqa: E402
from benchmarks.hostile import BOUNDARY, multipart, sample_photo  # noqa: E402

HAPROXY_CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
REPLICA_ENV = {"DRAIN_S": "2", "LOG_LEVEL": "warning"}
# After a replica is ready, the proxy takes it back after two passing checks 500 ms apart
# (haproxy.cfg: rise 2, inter 500ms): restarting the other one before that leaves none.
PROXY_RISE_S = 1.5


class Replica:
    """One `python -m app.serve` on loopback, restartable."""

    def __init__(self, name: str, log_dir: Path, env: dict[str, str]) -> None:
        self.name, self.port, self.env = name, free_port(), env
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "app.serve", "--port", str(self.port), "--no-access-log"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **self.env},
                                         stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        wait_until_ready(self.proc, f"http://127.0.0.1:{self.port}/health/ready", timeout_s=60)

    def restart(self) -> None:
        """SIGTERM, as an orchestrator sends it; wait for the drain and exit; start again."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.start()
        time.sleep(PROXY_RISE_S)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextlib.contextmanager
def loopback(log_dir: Path) -> Iterator[tuple[str, list[Callable[[], None]]]]:
    """Two replicas and HAProxy on free loopback ports: the proxy's URL and each replica's
    restart."""
    if not shutil.which("haproxy"):
        raise SystemExit("rolling_restart: haproxy is not installed (apt-get install haproxy)")
    replicas = [Replica(f"replica-{i}", log_dir, REPLICA_ENV) for i in (1, 2)]
    proxy_port = free_port()
    env = {**os.environ, "BIND": f"127.0.0.1:{proxy_port}",
           "REPLICA_1": f"127.0.0.1:{replicas[0].port}",
           "REPLICA_2": f"127.0.0.1:{replicas[1].port}"}  # fmt: skip
    proxy: subprocess.Popen[bytes] | None = None
    try:
        for replica in replicas:
            replica.start()
        with (log_dir / "haproxy.log").open("wb") as out:
            proxy = subprocess.Popen(["haproxy", "-db", "-f", str(HAPROXY_CFG)], env=env,
                                     stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        url = f"http://127.0.0.1:{proxy_port}"
        wait_until_ready(proxy, f"{url}/health/ready", timeout_s=30)
        yield url, [r.restart for r in replicas]
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
        for replica in replicas:
            replica.stop()


def compose_restarts(project: str, url: str) -> list[Callable[[], None]]:
    """docker-compose restart of each replica container, then wait until the proxy's health
    check has it back (its own /health/ready through `docker exec`)."""

    def restart(service: str) -> None:
        base = ["docker-compose", "-p", project, "--profile", "replicas"]
        subprocess.run([*base, "restart", service], check=True, capture_output=True)
        probe = (
            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/ready')"
        )
        deadline = time.monotonic() + 120
        while subprocess.run([*base, "exec", "-T", service, "python3", "-c", probe],
                             capture_output=True).returncode != 0:  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} did not come back")
            time.sleep(0.5)
        time.sleep(PROXY_RISE_S)

    return [lambda s=s: restart(s) for s in ("replica-1", "replica-2")]


def clients(url: str, body: bytes, n: int, stop: threading.Event) -> list[tuple[float, int, float]]:
    """n keep-alive clients posting `body` until `stop`: (time, status, seconds) of each
    answer; status 0 for a connection that failed."""
    parsed = urllib.parse.urlparse(url)
    seen: list[tuple[float, int, float]] = []
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def client() -> None:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        while not stop.is_set():
            start = time.monotonic()
            try:
                conn.request("POST", "/predict", body, headers)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
                status = 0
            seen.append((start, status, time.monotonic() - start))

    threads = [threading.Thread(target=client) for _ in range(n)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join()
    return seen


def rolling_restart(
    url: str,
    restarts: list[Callable[[], None]],
    seconds: float,
    rounds: int,
    n_clients: int,
    photo: Path | None = None,
) -> dict[str, Any]:
    """Clients for `seconds`; after 3 s, each replica restarted in turn, `rounds` times."""
    body = multipart(sample_photo(photo))
    stop = threading.Event()
    results: list[list[tuple[float, int, float]]] = []
    load = threading.Thread(target=lambda: results.append(clients(url, body, n_clients, stop)))
    start = time.monotonic()
    load.start()
    done: list[tuple[str, float, float]] = []
    try:
        time.sleep(3)
        for _ in range(rounds):
            for i, restart in enumerate(restarts, 1):
                began = time.monotonic() - start
                restart()
                done.append((f"replica-{i}", round(began, 1), round(time.monotonic() - start, 1)))
        time.sleep(max(0.0, seconds - (time.monotonic() - start)))
    finally:
        stop.set()
        load.join()
    return {
        "seconds": round(time.monotonic() - start, 1),
        "clients": n_clients,
        "restarts": [{"replica": r, "from_s": a, "ready_again_s": b} for r, a, b in done],
        **outcome(results[0], start),
    }


def outcome(seen: list[tuple[float, int, float]], start: float) -> dict[str, Any]:
    """What clients() saw: requests, every status, the failures (anything but 200, first ten
    with their time from start) and the latency percentiles."""
    statuses = Counter(status for _, status, _ in seen)
    times = sorted(t for _, _, t in seen)
    failed = [(round(t0 - start, 2), status) for t0, status, _ in seen if status != 200]
    return {
        "requests": len(seen),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failed": len(failed),
        "first_failures": failed[:10],
        "p50_ms": round(times[len(times) // 2] * 1000, 1) if times else None,
        "p99_ms": round(times[int(0.99 * (len(times) - 1))] * 1000, 1) if times else None,
        "slowest_ms": round(times[-1] * 1000, 1) if times else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/rolling_restart.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--seconds", type=float, default=60.0, help="how long the clients post")
    p.add_argument("--rounds", type=int, default=2, help="restarts of each replica")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients")
    p.add_argument("--compose", metavar="PROJECT", help="the replicas of this compose project")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="with --compose: the proxy")
    p.add_argument("--photo", type=Path, default=None, help="the photo to post")
    args = p.parse_args(argv)
    if args.compose:
        restarts = compose_restarts(args.compose, args.url)
        report = rolling_restart(
            args.url, restarts, args.seconds, args.rounds, args.clients, args.photo
        )
    else:
        with tempfile.TemporaryDirectory() as tmp, loopback(Path(tmp)) as (url, restarts):
            report = rolling_restart(
                url, restarts, args.seconds, args.rounds, args.clients, args.photo
            )
    print(json.dumps(report))
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
