"""Plain-ASGI pieces the middlewares share: HTTP-only middleware, a `send` that sees the start."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def on_start(send: Send, seen: Callable[[Message], None]) -> Send:
    """`send`, calling `seen` with the http.response.start message (to read or extend it) first."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            seen(message)
        await send(message)

    return wrapped


class HttpMiddleware:
    """A pure ASGI middleware for HTTP requests: other scopes (lifespan) pass straight through,
    each HTTP request goes to `handle` (no BaseHTTPMiddleware task per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError
