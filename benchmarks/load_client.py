"""A light HTTP/1.1 load client: keep-alive connections posting one prebuilt body in a loop.

    python benchmarks/load_client.py URL BODY_FILE CONTENT_TYPE CONCURRENCY SECONDS [HEADER]

Standard library only, so it starts fast and costs little; prints one JSON line (requests,
seconds, errors, p50/p95/p99 in ms). serve_load.py uses it when wrk is not installed.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import time
import urllib.parse
from pathlib import Path


async def _client(
    host: str, port: int, request: bytes, stop: float, latencies: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append(time.perf_counter() - start)
            if not head.startswith(b"HTTP/1.1 2"):
                errors.append(1)
    except (OSError, asyncio.IncompleteReadError):
        errors.append(1)
    finally:
        writer.close()


async def _drive(
    url: str, content_type: str, body: bytes, concurrency: int, seconds: float, header: str = ""
) -> dict[str, float]:
    parsed = urllib.parse.urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    request = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        + (f"{header}\r\n" if header else "")
        + "\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors: list[int] = []
    start = time.perf_counter()
    stop = start + seconds
    await asyncio.gather(
        *(_client(host, port, request, stop, latencies, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - start
    q = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else [0] * 99
    )
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "errors": len(errors),
        "p50_ms": q[49] * 1e3,
        "p95_ms": q[94] * 1e3,
        "p99_ms": q[98] * 1e3,
    }


def main() -> None:
    url, body, content_type, concurrency, seconds = sys.argv[1:6]
    header = sys.argv[6] if len(sys.argv) > 6 else ""
    data = Path(body).read_bytes()
    report = _drive(url, content_type, data, int(concurrency), float(seconds), header)
    print(json.dumps(asyncio.run(report)))


if __name__ == "__main__":
    main()
