"""Hostile clients against a running service; each attack prints what the service did, as JSON.

    python benchmarks/hostile.py URL stalled    [--connections 21000 --processes 3 --hold 30]
    python benchmarks/hostile.py URL overload   [--clients 256 --seconds 10 --runs 5 --photo PATH]
    python benchmarks/hostile.py URL slow-body  [--rate 100]
    python benchmarks/hostile.py URL short-body
    python benchmarks/hostile.py URL disconnect [--count 20]
    python benchmarks/hostile.py URL huge-images [--count 8 --megapixels 40 --pid PID]

stalled:    connections that send half a request header and stop, more than the fd limit, from
            several processes; meanwhile /health/live and /predict are probed every 0.25 s.
overload:   `wrk -t2 -c256` posting a photo as fast as it can (asyncio clients without wrk), against
            the service and, as the floor, a trivial app answering 503 to everything
            (benchmarks/floor_app.py under uvicorn), alternating, --runs times: statuses,
            Retry-After on every 503, the client-seen p50/p99/slowest, the same per status for 8
            connections opened during the flood, and the service's own histogram.
slow-body:  a body sent at RATE bytes/s; short-body: a Content-Length larger than the body sent;
            both report the status and how long the service took to end them.
disconnect: uploads abandoned half-way (the client closes the socket).
huge-images: concurrent uploads of small PNG files that decode to 40 MP; with the server's pid,
            its memory before, after and at peak.

Standard library only. The same functions drive tests/benchmarks/test_hostile.py (small numbers)
and benchmarks/soak.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = (
    ROOT.parent / "shared" / "real-photos" / "9_ankle_boot" / "cook_13352_brown_boot.jpg"
)
BOUNDARY = "hostile0boundary"


def address(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 80


def multipart(data: bytes, field: str = "image", filename: str = "photo.jpg") -> bytes:
    """A multipart/form-data body (boundary BOUNDARY) holding one file."""
    disposition = f'form-data; name="{field}"; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n"
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def post_request(url: str, body: bytes, path: str = "/predict", length: int | None = None) -> bytes:
    """The bytes of a POST of a multipart body (Content-Length `length`, default the body's)."""
    host, port = address(url)
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    ).encode() + body


def sample_photo(path: Path | None = None) -> bytes:
    """The photo to post: `path`, the real photo beside the checkout, or a generated 400x534
    JPEG (a shape on a textured background) where neither exists."""
    path = path or DEFAULT_PHOTO
    if path.is_file():
        return path.read_bytes()
    from PIL import Image, ImageDraw  # only here: the other attacks need no Pillow

    img = Image.effect_noise((400, 534), 40).convert("RGB")
    ImageDraw.Draw(img).ellipse((80, 120, 320, 420), fill=(120, 60, 30))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def status_of(head: bytes) -> int:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else 0


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    body = await reader.readexactly(int(length.group(1)) if length else 0)
    return status_of(head), head, body


def get_status(url: str, path: str, timeout: float = 1.0) -> int:
    """One GET on a fresh connection: the status, or 0 when no answer came within timeout."""
    host, port = address(url)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            return status_of(s.recv(64))
    except OSError:
        return 0


def post_status(url: str, request: bytes, timeout: float = 2.0) -> int:
    """One prebuilt POST on a fresh connection: the status, or 0 when none came within timeout."""
    host, port = address(url)
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(request)
            return status_of(s.recv(64))
    except OSError:
        return 0


# -- stalled headers ------------------------------------------------------------------------------


def _stall(host: str, port: int, count: int, hold_s: float, out: mp.Queue) -> None:
    """Open `count` connections, send half a header on each, hold them, report their fate."""
    start = time.monotonic()
    socks, fates = [], Counter()
    for _ in range(count):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect((host, port))
            s.sendall(b"GET /health/live HTTP/1.1\r\nHost: victim\r\nX-Stalled: ")
        except OSError:
            fates["connect or send failed"] += 1
            s.close()
            continue
        socks.append(s)
    opened = time.monotonic() - start
    time.sleep(max(0.0, hold_s - opened))
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(64)
            fates[f"answered {status_of(data)}" if data else "closed by the server"] += 1
        except BlockingIOError:
            fates["still open"] += 1
        except OSError:
            fates["reset by the server"] += 1
        s.close()
    out.put({"opened_s": round(opened, 2), **fates})


def stalled(
    url: str, connections: int, processes: int, hold_s: float, photo: bytes
) -> dict[str, Any]:
    """Stalled half-headers from several processes; when /health/live and /predict worked again."""
    host, port = address(url)
    predict = post_request(url, multipart(photo))
    out: mp.Queue = mp.Queue()
    per = connections // processes
    start = time.monotonic()
    workers = [
        mp.Process(target=_stall, args=(host, port, per, hold_s, out)) for _ in range(processes)
    ]
    for w in workers:
        w.start()
    probes: list[tuple[float, int, int]] = []
    while time.monotonic() - start < hold_s:
        probes.append(
            (time.monotonic() - start, get_status(url, "/health/live"), post_status(url, predict))
        )
        time.sleep(0.25)
    reports = [out.get(timeout=60) for _ in workers]
    for w in workers:
        w.join()
    failing = [t for t, live, pred in probes if (live, pred) != (200, 200)]
    recovered = max(failing, default=-0.25) + 0.25 if failing else 0.0
    fates: Counter[str] = Counter()
    for r in reports:
        fates.update({k: v for k, v in r.items() if k != "opened_s"})
    return {
        "attack": "stalled",
        "connections": per * processes,
        "processes": processes,
        "opened_s": max(r["opened_s"] for r in reports),
        "fates": dict(fates),
        "probes": len(probes),
        "probes_failing": len(failing),
        "all_200_from_s": round(recovered, 2),
    }


# -- overload -------------------------------------------------------------------------------------


async def _hammer(
    host: str, port: int, request: bytes, stop: float, seen: list[tuple[int, float, bool]]
) -> None:
    reader = writer = None
    while time.perf_counter() < stop:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            start = time.perf_counter()
            writer.write(request)
            status, head, _ = await _read_answer(reader)  # type: ignore[arg-type]
            seen.append((status, time.perf_counter() - start, b"retry-after" in head.lower()))
            if b"connection: close" in head.lower():
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError):
            seen.append((0, 0.0, False))
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.05)
    if writer is not None:
        writer.close()


def _hammered(
    url: str, request: bytes, clients: int, seconds: float, delay: float = 0.0
) -> list[tuple[int, float, bool]]:
    """(status, seconds, Retry-After given) of every answer to `clients` keep-alive clients
    posting `request` for `seconds`, their connections opened after `delay` seconds."""
    host, port = address(url)
    seen: list[tuple[int, float, bool]] = []

    async def drive() -> None:
        await asyncio.sleep(delay)
        stop = time.perf_counter() + seconds
        await asyncio.gather(*(_hammer(host, port, request, stop, seen) for _ in range(clients)))

    asyncio.run(drive())
    return seen


def _quantile_ms(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 1) if values else None


def per_status(seen: list[tuple[int, float, bool]]) -> dict[str, dict[str, float | None]]:
    """Client-seen latency of each status: count, p50, p99 and slowest in ms."""
    out: dict[str, dict[str, float | None]] = {}
    for status in sorted({s for s, _, _ in seen}):
        times = [t for s, t, _ in seen if s == status]
        out[str(status)] = {"count": len(times), "p50_ms": _quantile_ms(times, 0.5),
                            "p99_ms": _quantile_ms(times, 0.99),
                            "slowest_ms": round(max(times) * 1000, 1)}  # fmt: skip
    return out


def overload(url: str, body: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` keep-alive clients posting `body` for `seconds`: what came back, how late."""
    seen = _hammered(url, post_request(url, body), clients, seconds)
    by_status = Counter(status for status, _, _ in seen)
    ok = sorted(t for status, t, _ in seen if status == 200)
    return {
        "attack": "overload",
        "clients": clients,
        "seconds": seconds,
        "statuses": {str(k): v for k, v in sorted(by_status.items())},
        "slowest_answer_s": round(max((t for _, t, _ in seen), default=0.0), 3),
        "p99_200_ms": round(statistics.quantiles(ok, n=100)[98] * 1000, 1) if len(ok) > 1 else None,
        "every_503_has_retry_after": all(r for status, _, r in seen if status == 503),
    }


# wrk's script for the flood: statuses, 503s without Retry-After, client-seen percentiles.
FLOOD_LUA = """
local f = assert(io.open(os.getenv("FLOOD_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. os.getenv("FLOOD_BOUNDARY")
local threads = {}
function setup(thread) table.insert(threads, thread) end
statuses = {}
function response(status, headers, body)
  local key = tostring(status)
  if status == 503 and headers["retry-after"] == nil and headers["Retry-After"] == nil then
    key = "503-without-retry-after"
  end
  statuses[key] = (statuses[key] or 0) + 1
end
function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    for s, n in pairs(t:get("statuses")) do counts[s] = (counts[s] or 0) + n end
  end
  local parts = {}
  for s, n in pairs(counts) do table.insert(parts, string.format('"%s": %d', s, n)) end
  local e = summary.errors
  io.write(string.format('{"requests": %d, "p50_ms": %.1f, "p99_ms": %.1f, "slowest_ms": %.1f, '
    .. '"socket_errors": %d, "statuses": {%s}}\\n', summary.requests,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ", ")))
end
"""


def wrk_flood(url: str, body: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """`wrk -t2 -c{clients}` posting `body` for `seconds`, as the overload bar is stated."""
    with tempfile.TemporaryDirectory() as tmp:
        script, data = Path(tmp, "flood.lua"), Path(tmp, "body")
        script.write_text(FLOOD_LUA)
        data.write_bytes(body)
        env = {**os.environ, "FLOOD_BODY": str(data), "FLOOD_BOUNDARY": BOUNDARY}
        cmd = ["wrk", "-t2", f"-c{clients}", f"-d{math.ceil(seconds)}s", "--timeout", "30s",
               "-s", str(script), url.rstrip("/") + "/predict"]  # fmt: skip
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][-1])


def asyncio_flood(url: str, body: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """wrk_flood's statuses from asyncio clients, where wrk is not installed."""
    seen = _hammered(url, post_request(url, body), clients, seconds)
    return {"statuses": dict(Counter(str(status) for status, _, _ in seen))}


def server_histogram(url: str, route: str = "/predict") -> dict[float, float]:
    """The service's own request-duration histogram for `route`: {upper bound s: count}."""
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = (
        rf'fashion_request_duration_seconds_bucket{{le="([^"]+)",route="{re.escape(route)}"}} (\S+)'
    )
    return {float(le): float(n) for le, n in re.findall(pattern, text)}


def histogram_summary(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """The requests between two histogram readings: how many, the bucket holding the 99th
    percentile, and the largest bucket any reached (upper bounds, seconds)."""
    counts = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
    total = counts.get(math.inf, 0.0)
    if not total:
        return {"requests": 0}
    p99 = next(le for le, n in counts.items() if n >= 0.99 * total)
    slowest = next(le for le, n in counts.items() if n >= total)
    return {"requests": int(total), "p99_at_most_s": p99, "slowest_at_most_s": slowest}


@contextlib.contextmanager
def floor_server() -> Iterator[str]:
    """benchmarks/floor_app.py (503 to everything) under uvicorn as it starts by default."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent),
           "floor_app:app", "--port", str(port), "--no-access-log",
           "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while get_status(url, "/") != 503:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the floor app did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


PROBES = 8  # connections of our own, opened half a second into the flood, timed per status


def flood(url: str, body: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """One flood: wrk's `clients` connections (or asyncio ones without wrk) posting `body`,
    and PROBES more opened while it runs, whose answers are timed per status at the socket."""
    request = post_request(url, body)
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(wrk_flood if shutil.which("wrk") else asyncio_flood,
                           url, body, clients - PROBES, seconds)  # fmt: skip
        probed = _hammered(url, request, PROBES, seconds - 1.0, delay=0.5)
        result = load.result()
    result["probes"] = per_status(probed)
    return result


def overload_against_floor(
    url: str, body: bytes, clients: int, seconds: float, runs: int
) -> dict[str, Any]:
    """The flood against the service and against the floor app, alternating, `runs` times;
    with the service's own histogram of each run beside the clients' view."""
    service_runs, floor_runs = [], []
    with floor_server() as floor:
        for _ in range(runs):
            before = server_histogram(url)
            result = flood(url, body, clients, seconds)
            result["server_histogram"] = histogram_summary(before, server_histogram(url))
            service_runs.append(result)
            floor_runs.append(flood(floor, body, clients, seconds))
            for name, r in (("service", service_runs[-1]), ("floor", floor_runs[-1])):
                print(f"{name:8} p99 {r.get('p99_ms')} ms, slowest {r.get('slowest_ms')} ms, "
                      f"statuses {r['statuses']}, probes {r['probes']}"
                      + (f", server {r['server_histogram']}" if "server_histogram" in r else ""),
                      file=sys.stderr, flush=True)  # fmt: skip
    return {"attack": "overload", "clients": clients, "seconds": seconds,
            "service": service_runs, "floor": floor_runs}  # fmt: skip


# -- slow and short bodies, disconnects ---------------------------------------------------------


def _answer_within(s: socket.socket, seconds: float) -> tuple[int, float]:
    """Wait up to `seconds` for the server to answer or close: (status or 0, seconds taken)."""
    start = time.monotonic()
    s.settimeout(seconds)
    try:
        data = s.recv(256)
    except TimeoutError:
        return -1, seconds  # nothing: the server is still waiting
    except OSError:
        data = b""
    return status_of(data), time.monotonic() - start


def slow_body(url: str, rate: float, photo: bytes, give_up_s: float = 120) -> dict[str, Any]:
    """A real upload sent at `rate` bytes/s: the status and when the service cut it."""
    request = post_request(url, multipart(photo))
    split = request.index(b"\r\n\r\n") + 4
    head, rest = request[:split], request[split:]
    chunk = max(1, int(rate / 10))  # ten sends a second
    start = time.monotonic()
    with socket.create_connection(address(url), timeout=5) as s:
        s.sendall(head)
        s.setblocking(False)
        status = -1
        while rest and time.monotonic() - start < give_up_s:
            try:
                status = status_of(s.recv(256))
                break
            except BlockingIOError:
                pass
            except OSError:
                status = 0
                break
            try:
                s.send(rest[:chunk])
            except OSError:
                status = 0
                break
            rest = rest[chunk:]
            time.sleep(0.1)
    return {"attack": "slow-body", "rate": rate, "status": status,
            "cut_after_s": round(time.monotonic() - start, 2)}  # fmt: skip


def short_body(url: str, give_up_s: float = 120) -> dict[str, Any]:
    """A Content-Length 1,000 bytes larger than the body that follows it."""
    body = multipart(b"\x89PNG" + b"0" * 100)
    with socket.create_connection(address(url), timeout=5) as s:
        s.sendall(post_request(url, body, length=len(body) + 1000))
        status, took = _answer_within(s, give_up_s)
    return {"attack": "short-body", "status": status, "cut_after_s": round(took, 2)}


def huge_png(megapixels: float = 40, seed: int = 0) -> bytes:
    """A real RGB PNG of `megapixels` (a few shapes on flat colour: ~100 KB for 40 MP)."""
    from PIL import Image, ImageDraw

    side = int((megapixels * 1e6) ** 0.5)
    img = Image.new("RGB", (side, side), (200 + seed % 50, 190, 180))
    draw = ImageDraw.Draw(img)
    for i in range(6):
        box = (side * i // 8, side * i // 9, side * (i + 2) // 8, side * (i + 3) // 9)
        draw.ellipse(box, fill=(30 * i, 90, 255 - 30 * i))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident memory (or its peak, VmHWM) in MB, from /proc."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def huge_images(url: str, count: int, megapixels: float, pid: int | None) -> dict[str, Any]:
    """`count` concurrent uploads of `megapixels` PNGs: statuses and, given the server's pid,
    its RSS before and after and its peak."""
    body = multipart(huge_png(megapixels), filename="huge.png")
    request = post_request(url, body)
    before = (rss_mb(pid), rss_mb(pid, "VmHWM")) if pid else (0.0, 0.0)
    start = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(lambda _: post_status(url, request, 60), range(count)))
    report: dict[str, Any] = {
        "attack": "huge-images",
        "count": count,
        "megapixels": megapixels,
        "file_kb": round(len(body) / 1024),
        "statuses": statuses,
        "seconds": round(time.monotonic() - start, 2),
    }
    if pid:
        time.sleep(0.5)
        report |= {"rss_before_mb": round(before[0]), "rss_after_mb": round(rss_mb(pid)),
                   "peak_before_mb": round(before[1]),
                   "peak_after_mb": round(rss_mb(pid, "VmHWM"))}  # fmt: skip
    return report


def disconnect(url: str, count: int, photo: bytes) -> dict[str, Any]:
    """Uploads abandoned half-way: the client closes its socket mid-body."""
    request = post_request(url, multipart(photo))
    for _ in range(count):
        with socket.create_connection(address(url), timeout=5) as s:
            s.sendall(request[: len(request) // 2])
            time.sleep(0.05)
    return {"attack": "disconnect", "count": count}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url")
    p.add_argument(
        "attack",
        choices=["stalled", "overload", "slow-body", "short-body", "disconnect", "huge-images"],
    )
    p.add_argument("--connections", type=int, default=21_000)
    p.add_argument("--processes", type=int, default=3)
    p.add_argument("--hold", type=float, default=30.0, help="seconds the stalled sockets are held")
    p.add_argument("--clients", type=int, default=256)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--runs", type=int, default=5, help="overload: floods of each server")
    p.add_argument("--rate", type=float, default=100.0, help="slow-body bytes per second")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--megapixels", type=float, default=40.0, help="huge-images: each PNG's size")
    p.add_argument("--pid", type=int, help="huge-images: the server's pid, for its memory")
    p.add_argument("--photo", type=Path, help="the photo to post (default: a real product photo)")
    args = p.parse_args(argv)
    photo = sample_photo(args.photo)
    if args.attack == "stalled":
        result = stalled(args.url, args.connections, args.processes, args.hold, photo)
    elif args.attack == "overload":
        result = overload_against_floor(
            args.url, multipart(photo), args.clients, args.seconds, args.runs
        )
    elif args.attack == "slow-body":
        result = slow_body(args.url, args.rate, photo)
    elif args.attack == "short-body":
        result = short_body(args.url)
    elif args.attack == "huge-images":
        result = huge_images(args.url, args.count, args.megapixels, args.pid)
    else:
        result = disconnect(args.url, args.count, photo)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
