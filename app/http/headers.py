"""The fixed headers every answer carries: nosniff everywhere, no-store on predictions, the
page's Content-Security-Policy on the page and its files."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from app.http.asgi import HttpMiddleware, on_start
from app.protocol import oip

# Predictions are never cached: /predict* and the Open Inference Protocol model routes.
NO_STORE_PREFIX = ("/predict", f"{oip.PREFIX}/models/")
# The page at / and its files (app/http/page): everything from this origin, no inline script or
# style; the photos it shows are blob: URLs, the 28x28 a data: URL. The key field needs no form
# action: the script sends it.
PAGE_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_PATHS = ("/", "/page/")

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
PAGE_CSP = (b"content-security-policy", PAGE_POLICY)


def headers_for(path: str) -> list[tuple[bytes, bytes]]:
    """The fixed security headers of an answer on `path`."""
    if path.startswith(NO_STORE_PREFIX):
        return [NOSNIFF, NO_STORE]
    if path == "/" or path.startswith(PAGE_PATHS[1]):
        return [NOSNIFF, PAGE_CSP]
    return [NOSNIFF]


class SecurityHeadersMiddleware(HttpMiddleware):
    """Gives every answer its fixed headers (the API key's 401s included: it wraps that check)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = headers_for(scope["path"])

        def add_headers(message: Message) -> None:
            message["headers"] = [*message.get("headers", ()), *extra]

        await self.app(scope, receive, on_start(send, add_headers))
