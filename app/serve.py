"""Run the service: `python -m app.serve [--host H] [--port P] [--workers N]`.

uvicorn with the guards it leaves out. Stock uvicorn never times out a connection that has not
finished sending its request header and never caps connections: ~20,000 half-sent headers (the
fd limit) took a test server off the network, with nothing logged. Here each connection gets
HEADER_TIMEOUT_S to send a complete header (after that: 408 and closed), connections over
MAX_CONNECTIONS get 503 and are closed at once (so the fd limit is never reached), SIGTERM
waits SHUTDOWN_TIMEOUT_S for in-flight requests before cutting the rest, and each kind of cut
is logged, at most one summary line per LOG_EVERY_S.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import resource
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from pydantic import ValidationError
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings, settings_problem
from app.serving import startup
from model.cli import Parser, fail

if TYPE_CHECKING:
    from app.http.deps import Services

log = logging.getLogger("app.server")

# File descriptors kept free under the cap: the model, logs, sockets to clients being refused.
FD_RESERVE = 64
LOG_EVERY_S = 5.0


def _response(status: str, detail: str) -> bytes:
    body = b'{"detail":"' + detail.encode() + b'"}'
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n"
    )
    if status.startswith("503"):
        head += "retry-after: 1\r\n"
    return head.encode() + b"\r\n" + body


HEADER_TIMEOUT = _response("408 Request Timeout", "the request header did not arrive in time")
TOO_MANY = _response("503 Service Unavailable", "too many open connections; retry shortly")


class _CutLog:
    """Counts connections cut for one reason; logs the first at once, then one sum per
    LOG_EVERY_S while they keep coming (an attack of 20,000 is a few lines, not 20,000)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.pending = 0
        self.total = 0
        self.logged_at = -LOG_EVERY_S
        self.flush_scheduled = False

    def add(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pending += 1
        self.total += 1
        wait = self.logged_at + LOG_EVERY_S - time.monotonic()
        if wait <= 0:
            self.flush()
        elif not self.flush_scheduled:
            self.flush_scheduled = True
            loop.call_later(wait, self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.pending:
            log.warning("%s: %d connection(s), %d since start", self.what, self.pending, self.total)
            self.pending, self.logged_at = 0, time.monotonic()


@functools.cache
def limits() -> tuple[float, int]:
    """(header timeout in seconds, connection cap) for this process, from the settings and the
    process's file-descriptor limit."""
    settings = Settings()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap = settings.max_connections
    if soft != resource.RLIM_INFINITY:
        cap = max(1, min(cap, soft - FD_RESERVE))
    return settings.header_timeout_s, cap


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request-header deadline and a connection cap."""

    timed_out = _CutLog("closed: no complete request header within the header timeout")
    refused = _CutLog("refused with 503: over the connection cap")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        header_timeout, cap = limits()
        if len(self.connections) > cap:
            self.refused.add(self.loop)
            transport.write(TOO_MANY)
            transport.close()
            return
        self._arm(header_timeout)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A kept-alive connection: its next request has the same time to send its header.
        if not self.transport.is_closing():
            self._arm(limits()[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(seconds, self._header_timed_out)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or (self.cycle and not self.cycle.response_complete):
            return  # a request under way: its body and answer have deadlines of their own
        self.timed_out.add(self.loop)
        self.transport.write(HEADER_TIMEOUT)
        self.transport.close()


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that the first SIGTERM starts DRAIN_S of draining: readiness
    answers 503 while requests are still accepted and served; then the usual shutdown (a
    second signal, or Ctrl-C, ends the drain at once)."""

    def __init__(self, config: uvicorn.Config, services: Services, drain_s: float) -> None:
        super().__init__(config)
        self.services, self.drain_s = services, drain_s
        self.drain_ends: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self.drain_s > 0 and self.drain_ends is None:
            self.services.draining = True
            self.drain_ends = time.monotonic() + self.drain_s
            log.info("SIGTERM: draining for %g s (readiness 503), then shutting down", self.drain_s)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain_ends is not None and time.monotonic() >= self.drain_ends:
            self.should_exit = True
        return await super().on_tick(counter)


def port_problem(host: str, port: int) -> str | None:
    """Why the service could not listen on host:port, checked before anything loads (uvicorn
    would say it only after loading the model, among its start-up lines); None when it can."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"cannot resolve host {host!r}: {exc.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def main(argv: list[str] | None = None) -> None:
    p = Parser(prog="python -m app.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="(env HOST)")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="(PORT)")
    p.add_argument(
        "--workers", type=int, default=int(os.environ.get("WORKERS", "1")), help="(WORKERS)"
    )
    p.add_argument("--no-access-log", action="store_true", help="no line per request")
    args = p.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        fail("python -m app.serve", f"a setting is not valid: {settings_problem(exc)}")
    if problem := port_problem(args.host, args.port):
        fail("python -m app.serve", problem)
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "http": GuardedProtocol,
        "access_log": not args.no_access_log,
        "log_level": settings.log_level.lower(),
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
        # asyncio's own loop, not uvloop: under a flood uvloop accepted one new connection per
        # loop iteration, so the last of 256 connections opened at once waited 4.5 s for its
        # first answer (asyncio: all 256 within 0.08 s). The rates it gives are the same
        # (paired runs at c=1 and c=32, PNG and photo, within 3 %).
        "loop": "asyncio",
        "ws": "none",  # no WebSocket routes: importing the websockets package costs 20 ms at start
    }
    if args.workers > 1:
        uvicorn.run("app.http.factory:create_app", factory=True, workers=args.workers, **options)
        return
    # No automatic collections while the service loads: each full one walks every object
    # imported so far (0.1 s in all). The lifespan freezes what loaded and enables them again.
    gc.disable()
    # The default model loads in a thread while FastAPI and the routes import: ONNX Runtime's
    # first session is C++ outside the GIL, so the two overlap (ready ~0.3 s sooner).
    with ThreadPoolExecutor(1, thread_name_prefix="load") as pool:
        loading = pool.submit(startup.load, settings)
        from app.http.factory import create_app

        start = loading.result()
    app = create_app(settings, start)
    server = DrainingServer(uvicorn.Config(app, **options), app.state.services, settings.drain_s)
    server.run()


if __name__ == "__main__":
    main()
