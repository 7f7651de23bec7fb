"""The API key: which paths need it, how it is checked, and the middleware that refuses a
protected path without it (one check for every route, before any route runs, and no dependency
to solve per request)."""

from __future__ import annotations

import secrets

from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ApiError
from app.http.asgi import HttpMiddleware
from app.http.handlers import error_response
from app.protocol import oip

# Predictions, the model's description and the v2 model routes need the key when one is set;
# health, metrics, the docs and v2 readiness never do.
PROTECTED_PREFIXES = ("/predict", "/model", "/models", f"{oip.PREFIX}/repository")
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


class ApiKeyMiddleware(HttpMiddleware):
    """Refuses a protected path without the API key (401), when one is set."""

    def __init__(self, app: ASGIApp, api_key: SecretStr | None) -> None:
        super().__init__(app)
        self.api_key = api_key

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.api_key is not None and is_protected(path):
            try:
                check_api_key(Headers(scope=scope), self.api_key)
            except ApiError as exc:
                answer = error_response(path, exc.status, exc.detail, exc.headers)
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
