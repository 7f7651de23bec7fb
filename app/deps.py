"""Request dependencies: the running engine and settings, and the optional API key check."""

from __future__ import annotations

import secrets

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.engine import InferenceEngine
from app.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key header")


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def get_engine(request: Request) -> InferenceEngine:
    """The engine, or 503 while the model is not loaded and warmed up."""
    engine: InferenceEngine | None = getattr(request.app.state, "engine", None)
    if engine is None or not engine.ready:
        raise ApiError(503, "the model is not loaded yet", {"Retry-After": "1"})
    return engine


def require_api_key(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header: str | None = Depends(_header),
) -> None:
    """When API_KEY is set, accept it as 'Authorization: Bearer <key>' or 'X-API-Key'."""
    expected = get_settings(request).api_key
    if expected is None:
        return
    given = header or (bearer.credentials if bearer else None)
    if given is None:
        raise ApiError(
            401,
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            {"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(401, "the API key is not valid", {"WWW-Authenticate": "Bearer"})
