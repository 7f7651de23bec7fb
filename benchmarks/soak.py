"""Soak and chaos: mixed good and hostile traffic against the service for a while, one restart.

    python benchmarks/soak.py [--minutes 10] [--json runs/soak.json] [--env KEY=VALUE ...]

Starts the service (`python -m app.serve`, as `make serve` does), then runs at once, until the
time is up:
  good        Fashion-MNIST PNGs and photos, two clients back to back
  bad         every kind of bad upload the tests know, one client, ~20 a second
  disconnect  an upload abandoned half-way, every 2 s
  stalled     200 connections sending half a header, every 30 s (the server times them out)
  slow-body   an upload at 100 B/s, every 30 s (the server cuts it)
  overload    128 clients for 3 s, every 60 s (503 with Retry-After is the expected answer)
  huge        four concurrent 40-megapixel PNGs, every 60 s
  health      GET /health/live every 0.25 s, timed, from a process of its own
Half-way it sends SIGTERM, checks that the process exits within its shutdown deadline, and
starts it again. It reports requests by traffic kind and status, every 500 (none allowed), p99
of the good requests, each process's RSS at start, after warm-up and at the end, and how often
/health/live took more than 100 ms (outside the restart). Standard library and Pillow only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hostile  # a sibling script, imported from its folder

from benchmarks._net import free_port

ROOT = Path(__file__).resolve().parents[1]
WARM_UP_S = 30.0


def bad_requests(url: str) -> list[bytes]:
    """Every bad-upload kind of the test table, as raw requests."""
    host, port = hostile.address(url)

    def raw(content_type: str, body: bytes) -> bytes:
        head = f"POST /predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    png = hostile.huge_png(0.0004)  # a real 20x20 PNG
    bomb_ihdr = png[:16] + (90_000).to_bytes(4, "big") * 2 + png[24:]
    return [
        hostile.post_request(url, hostile.multipart(b"just some text", filename="a.txt")),
        hostile.post_request(url, hostile.multipart(b"", filename="empty.png")),
        hostile.post_request(url, hostile.multipart(png[: len(png) // 2])),
        hostile.post_request(url, hostile.multipart(bomb_ihdr)),
        hostile.post_request(url, hostile.multipart(b"\x89PNG" + b"0" * 11_000_000)),
        raw("application/json", b'{"image": "x"}'),
        raw("multipart/form-data", b"--x"),
        raw("text/" + "x" * 40_000, b"x"),
        hostile.post_request(url, hostile.multipart(png, field="photo")),
    ]


def _probe_health(
    url: str, start: float, stop: Any, paused: Any, out: mp.Queue[list[tuple[float, float, int]]]
) -> None:
    """GET /health/live every 0.25 s, in a process of its own: timed from a thread of the load
    generator, the probe would also time that process's GIL, busy with 130 other clients."""
    seen = []
    while not stop.wait(0.25):
        if paused.is_set():
            continue
        sent = time.perf_counter()
        status = hostile.get_status(url, "/health/live", timeout=2)
        if not paused.is_set():  # a probe the restart overlapped does not count
            seen.append((round(time.monotonic() - start, 2), time.perf_counter() - sent, status))
    out.put(seen)


class Soak:
    """The service process, the traffic threads, and what they saw."""

    def __init__(self, minutes: float, env: dict[str, str], log: Path) -> None:
        self.seconds = minutes * 60
        self.env = {**os.environ, "LOG_LEVEL": "warning", **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.lock = threading.Lock()
        self.seen: list[tuple[str, int, float]] = []  # (kind, status, seconds)
        self.health: list[tuple[float, float, int]] = []  # (time, seconds, status)
        self.processes: list[dict[str, Any]] = []
        # Process-shared, for the health probe: threads wait on them just the same.
        self.restarting = mp.Event()
        self.stop = mp.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_time = 0.0

    # -- the service --------------------------------------------------------------------------

    def start_service(self) -> None:
        cmd = [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--no-access-log"]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + 120
        while hostile.get_status(self.url, "/health/ready") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start; see {self.log}")
            time.sleep(0.2)
        self.processes.append({"pid": self.proc.pid, "started_at_s": self._now(),
                               "rss_start_mb": hostile.rss_mb(self.proc.pid)})  # fmt: skip

    def sigterm_and_restart(self) -> None:
        assert self.proc is not None
        self.restarting.set()
        record = self.processes[-1]
        record["rss_end_mb"] = hostile.rss_mb(self.proc.pid)
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        record["exit_code"] = self.proc.wait(timeout=120)
        record["exit_after_sigterm_s"] = round(time.monotonic() - sent, 2)
        self.start_service()
        self.restarting.clear()

    def _now(self) -> float:
        return round(time.monotonic() - self.start_time, 2)

    def _note(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.seen.append((kind, status, seconds))

    def _every(self, period: float, action: Any) -> None:
        while not self.stop.wait(period):
            if not self.restarting.is_set():
                action()

    # -- traffic ------------------------------------------------------------------------------

    def good(self, kind: str, request: bytes) -> None:
        while not self.stop.is_set():
            start = time.perf_counter()
            status = hostile.post_status(self.url, request, timeout=10)
            if not self.restarting.is_set():
                self._note(kind, status, time.perf_counter() - start)

    def bad(self, requests: list[bytes]) -> None:
        i = 0
        while not self.stop.wait(0.05):
            if not self.restarting.is_set():
                status = hostile.post_status(self.url, requests[i % len(requests)], timeout=30)
                self._note("bad", status, 0.0)
                i += 1

    def stalled_burst(self) -> None:
        socks = []
        for _ in range(200):
            with contextlib.suppress(OSError):
                s = socket.create_connection(hostile.address(self.url), timeout=2)
                s.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Stalled: ")
                socks.append(s)
        time.sleep(15)  # past the header timeout: each should have had its 408 and been closed
        for s in socks:
            s.settimeout(0.1)
            try:
                self._note("stalled", hostile.status_of(s.recv(64)), 0.0)
            except OSError:
                self._note("stalled", -1, 0.0)  # still open, no answer
            s.close()

    def overload_burst(self, photo: bytes) -> None:
        report = hostile.overload(self.url, hostile.multipart(photo), clients=128, seconds=3)
        for status, count in report["statuses"].items():
            with self.lock:
                self.seen.extend([("overload", int(status), 0.0)] * count)

    def run(self, fm_png: bytes, photo: bytes) -> dict[str, Any]:
        self.start_time = time.monotonic()
        self.start_service()
        url = self.url
        png_request = hostile.post_request(url, hostile.multipart(fm_png))
        photo_request = hostile.post_request(url, hostile.multipart(photo))

        def disconnect() -> None:
            hostile.disconnect(url, 1, photo)
            self._note("disconnect", 0, 0)  # 0: sent, no answer expected

        def slow_body() -> None:
            self._note("slow-body", hostile.slow_body(url, 100, photo, 60)["status"], 0)

        def huge() -> None:
            for status in hostile.huge_images(url, 4, 40, None)["statuses"]:
                self._note("huge", status, 0)

        jobs = [
            ("good-png", self.good, ("good-png", png_request)),
            ("good-photo", self.good, ("good-photo", photo_request)),
            ("bad", self.bad, (bad_requests(url),)),
            ("disconnect", self._every, (2, disconnect)),
            ("stalled", self._every, (30, self.stalled_burst)),
            ("slow-body", self._every, (30, slow_body)),
            ("overload", self._every, (60, lambda: self.overload_burst(photo))),
            ("huge", self._every, (60, huge)),
        ]
        threads = [threading.Thread(target=f, args=a, name=n, daemon=True) for n, f, a in jobs]
        for t in threads:
            t.start()
        health: mp.Queue[list[tuple[float, float, int]]] = mp.Queue()
        args = (self.url, self.start_time, self.stop, self.restarting, health)
        probe = mp.Process(target=_probe_health, args=args, daemon=True)
        probe.start()
        half, end = self.seconds / 2, self.seconds
        restarted = False
        while (elapsed := time.monotonic() - self.start_time) < end:
            process = self.processes[-1]
            if "rss_warm_mb" not in process and elapsed - process["started_at_s"] > WARM_UP_S:
                assert self.proc is not None
                process["rss_warm_mb"] = hostile.rss_mb(self.proc.pid)
            if not restarted and elapsed >= half:
                self.sigterm_and_restart()
                restarted = True
            time.sleep(1)
        assert self.proc is not None
        self.processes[-1]["rss_end_mb"] = hostile.rss_mb(self.proc.pid)
        self.stop.set()
        self.health = health.get(timeout=30)
        probe.join(timeout=10)
        for t in threads:
            t.join(timeout=90)
        metrics_500 = self._server_500s()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return self.report(metrics_500)

    def _server_500s(self) -> float:
        host, port = hostile.address(self.url)
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(
                f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            text = b""
            while chunk := s.recv(65536):
                text += chunk
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.decode().splitlines()
            if line.startswith("fashion_requests_total") and 'status="500"' in line
        )

    def report(self, server_500s: float) -> dict[str, Any]:
        by_kind: dict[str, Counter[str]] = {}
        for kind, status, _ in self.seen:
            by_kind.setdefault(kind, Counter())[str(status)] += 1
        good = sorted(
            t for kind, status, t in self.seen if kind.startswith("good") and status == 200
        )
        slow_health = [t for _, t, status in self.health if t > 0.1 or status != 200]
        for p in self.processes:
            warm = p.get("rss_warm_mb", p["rss_end_mb"])
            p["rss_growth_after_warm_up_mb"] = round(p["rss_end_mb"] - warm, 1)
        by_status = {k: dict(sorted(v.items())) for k, v in sorted(by_kind.items())}
        p99 = statistics.quantiles(good, n=100)[98] * 1000 if len(good) > 1 else float("nan")
        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {_cpu_flags()}",
            "minutes": self.seconds / 60,
            "requests_by_kind_and_status": by_status,
            "server_500s": server_500s,
            "good_p99_ms": round(p99, 1),
            "good_requests": len(good),
            "health_probes": len(self.health),
            "health_over_100ms_or_failed": len(slow_health),
            "health_slowest_ms": round(max((t for _, t, _ in self.health), default=0) * 1e3, 1),
            "health_slow_probes": [
                {"at_s": at, "ms": round(t * 1e3, 1), "status": status}
                for at, t, status in self.health
                if t > 0.1 or status != 200
            ][:20],
            "processes": self.processes,
        }  # fmt: skip


def _cpu_flags() -> str:
    with contextlib.suppress(OSError):
        flags = next(
            line
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        ).split()
        wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
        return " ".join(f for f in wanted if f in flags) or "no AVX2"
    return "unknown CPU flags"


def _fashion_mnist_png() -> bytes:
    """A real Fashion-MNIST test image as PNG when the data set is installed, else a 28x28 shape."""
    import io

    import numpy as np
    from PIL import Image

    try:
        from model.data.fashion_mnist import load_split

        array = load_split("test").images[0].numpy()
    except (OSError, RuntimeError, ImportError):
        array = np.zeros((28, 28), np.uint8)
        array[6:22, 8:20] = 200
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--env", nargs="*", default=[], help="KEY=VALUE settings for the service")
    p.add_argument("--photo", type=Path, help="the photo to post (default: a real product photo)")
    p.add_argument("--json", type=Path, default=ROOT / "runs" / "soak.json")
    args = p.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    soak = Soak(args.minutes, env, args.json.with_suffix(".log"))
    print(f"soak: {args.minutes:g} min against {soak.url}; server log {soak.log}", flush=True)
    report = soak.run(_fashion_mnist_png(), hostile.sample_photo(args.photo))
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
