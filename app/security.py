"""Response headers every answer carries, and the Content-Security-Policy of the docs pages.

The fixed headers are added by the metrics middleware's wrapper, which every answer already
passes through (each ASGI layer costs every request); the docs pages, whose policy depends on
their body, get theirs from a wrapper around those two routes only (`protect_docs`)."""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import oip

DOC_PAGES = ("/docs", "/redoc")
# Predictions are never cached: /predict* and the Open Inference Protocol model routes.
NO_STORE_PREFIX = ("/predict", f"{oip.PREFIX}/models/")
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

# The docs pages load everything from this origin (the offline Swagger UI and ReDoc bundles);
# their one inline script is allowed by its hash, not by 'unsafe-inline'. Both UIs set inline
# styles, and ReDoc runs its search in a blob: worker.
DOCS_POLICY = (
    "default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")


def headers_for(path: str) -> list[tuple[bytes, bytes]]:
    """The fixed security headers of an answer on `path`."""
    return [NOSNIFF, NO_STORE] if path.startswith(NO_STORE_PREFIX) else [NOSNIFF]


def docs_policy(page: bytes) -> str:
    """The CSP for one docs page: its inline scripts allowed by their sha256."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page)
    ]
    return DOCS_POLICY.format(scripts=" ".join(["'self'", *hashes]))


class DocsPolicy:
    """Wraps a docs page's ASGI app: sends the page with its Content-Security-Policy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message | None = None
        body = b""

        async def collect(message: Message) -> None:
            # Hold the (small) page until its body is known, then send it with its policy.
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body += message.get("body", b"")
            if message.get("more_body", False):
                return
            policy = (b"content-security-policy", docs_policy(body).encode())
            start["headers"] = [*start.get("headers", []), policy]
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, collect)


def protect_docs(app: Starlette) -> None:
    """Give the /docs and /redoc routes their policy (after the routes exist)."""
    for route in app.routes:
        if isinstance(route, Route) and route.path in DOC_PAGES:
            route.app = DocsPolicy(route.app)
