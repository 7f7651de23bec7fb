"""The Content-Security-Policy of the docs pages (/docs, /redoc): their inline scripts allowed
by hash, set by a wrapper around those two routes only, since the policy depends on the body."""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
DOC_PAGES = ("/docs", "/redoc")
# The docs pages load everything from this origin (the offline Swagger UI and ReDoc bundles);
# their one inline script is allowed by its hash, not by 'unsafe-inline'. Both UIs set inline
# styles, and ReDoc runs its search in a blob: worker.
DOCS_POLICY = (
    "default-src 'none'; script-src {scripts}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


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
