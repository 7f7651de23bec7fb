"""Starting servers on loopback: a free port, and waiting until a server answers 200.

Shared by the benchmarks and the tests (tests/helpers.py imports it), so that both start the
service the same way.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout_s: float = 120.0,
    probe: bytes | None = None,
    content_type: str = "application/octet-stream",
) -> None:
    """Return once `url` answers 200: a GET, or a POST of `probe` (a health route can say ready
    before any worker is). RuntimeError when the process exits first or after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before it was ready")
        req = urllib.request.Request(url, data=probe, headers={"Content-Type": content_type})
        with contextlib.suppress(OSError), urllib.request.urlopen(req, timeout=5) as resp:
            if resp.status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not answering 200 after {timeout_s:g} s")
        time.sleep(0.2)
