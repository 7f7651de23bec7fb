"""Response headers every answer carries, and the Content-Security-Policy of the docs pages."""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOC_PAGES = ("/docs", "/redoc")
NO_STORE_PREFIX = "/predict"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

# The docs pages load everything from this origin (the offline Swagger UI and ReDoc bundles);
# their one inline script is allowed by its hash, not by 'unsafe-inline'. Both UIs set inline
# styles, and ReDoc runs its search in a blob: worker.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def docs_policy(page: bytes) -> str:
    """The CSP for one docs page: its inline scripts allowed by their sha256."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return DOCS_POLICY.format(hashes=hashes).replace("  ", " ")


class SecurityHeadersMiddleware:
    """nosniff on every answer, no-store on predictions, a CSP on the docs pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = [(b"x-content-type-options", b"nosniff")]
        if path.startswith(NO_STORE_PREFIX):
            extra.append((b"cache-control", b"no-store"))
        if path in DOC_PAGES:
            await self._docs_page(scope, receive, send, extra)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, add_headers)

    async def _docs_page(
        self, scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]]
    ) -> None:
        """Hold the (small) page until its body is known, then send it with its policy."""
        start: Message | None = None
        body = b""

        async def collect(message: Message) -> None:
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
            policy = docs_policy(body).encode()
            start["headers"] = [
                *start.get("headers", []),
                *extra,
                (b"content-security-policy", policy),
            ]
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, collect)
