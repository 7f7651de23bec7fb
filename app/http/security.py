"""Security at the edge: the API key on every protected route, the headers every answer carries,
and the Content-Security-Policy of the docs pages.

One ASGI middleware (`SecurityMiddleware`) guards the protected paths and adds the fixed headers:
one check for every route, /predict, /model and /v2 alike, before any route runs, and no
dependency to solve per request. The docs pages, whose policy depends on their body, get theirs
from a wrapper around those two routes only (`protect_docs`)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import ApiError
from app.http.asgi import HttpMiddleware, on_start
from app.http.handlers import error_response
from app.protocol import oip

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


# -----------------------------------------------------------------------------
# The API key

# The two ways to send the key, as the OpenAPI document declares them.
BEARER = HTTPBearer(auto_error=False, description="API key as a bearer token")
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key header")
# Predictions, the model's description and the v2 model routes need the key when one is set;
# health, metrics, the docs and v2 readiness never do.
PROTECTED_PREFIXES = ("/predict", "/model")
V2_MODELS = f"{oip.PREFIX}/models/"


def is_protected(path: str) -> bool:
    """Whether a request path needs the API key (when API_KEY is set)."""
    if path.startswith(V2_MODELS):
        return not path.endswith("/ready")
    return any(path == p or path.startswith(p + "/") for p in PROTECTED_PREFIXES)


def check_api_key(headers: Headers, expected: SecretStr) -> None:
    """Accept the key as 'Authorization: Bearer <key>' or 'X-API-Key'; else 401. Every
    credential sent must be right: a wrong one beside a right one is still refused."""
    given = []
    if (header := headers.get("x-api-key")) is not None:
        given.append(header)
    if (authorization := headers.get("authorization")) is not None:
        scheme, _, credentials = authorization.partition(" ")
        given.append(credentials.strip() if scheme.lower() == "bearer" else "")
    if not given:
        raise ApiError(
            401,
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            {"WWW-Authenticate": "Bearer"},
        )
    key = expected.get_secret_value().encode()
    if not all(secrets.compare_digest(g.encode(), key) for g in given):
        raise ApiError(401, "the API key is not valid", {"WWW-Authenticate": "Bearer"})


class SecurityMiddleware(HttpMiddleware):
    """Refuses a protected path without the API key (when one is set), and gives every answer
    its fixed security headers."""

    def __init__(self, app: ASGIApp, api_key: SecretStr | None) -> None:
        super().__init__(app)
        self.api_key = api_key

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        extra = headers_for(path)

        def add_headers(message: Message) -> None:
            message["headers"] = [*message.get("headers", ()), *extra]

        with_headers = on_start(send, add_headers)

        if self.api_key is not None and is_protected(path):
            try:
                check_api_key(Headers(scope=scope), self.api_key)
            except ApiError as exc:
                answer = error_response(path, exc.status, exc.detail, exc.headers)
                await answer(scope, receive, with_headers)
                return
        await self.app(scope, receive, with_headers)
