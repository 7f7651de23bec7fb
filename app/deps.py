"""Request dependencies: the running engine, decoder and settings, and the optional API key.

All async: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request.
Routes take them through the `Annotated` aliases at the bottom (`engine: EngineDep`).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.decode import Decoder
from app.engine import InferenceEngine
from app.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key header")


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def ready_engine(request: Request) -> InferenceEngine:
    """The engine, or 503 while the model is not loaded and warmed up: the one readiness check."""
    engine: InferenceEngine | None = getattr(request.app.state, "engine", None)
    if engine is None or not engine.ready:
        raise ApiError(503, "the model is not loaded and warmed up yet", {"Retry-After": "1"})
    return engine


async def get_engine(request: Request) -> InferenceEngine:
    """ready_engine as a dependency."""
    return ready_engine(request)


async def get_decoder(request: Request) -> Decoder:
    """The upload decoder (it starts before the engine reports ready)."""
    return request.app.state.decoder


def check_api_key(request: Request) -> None:
    """When API_KEY is set, accept it as 'Authorization: Bearer <key>' or 'X-API-Key'; else 401."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = credentials.strip() if scheme.lower() == "bearer" and credentials else None
    if given is None:
        raise ApiError(
            401,
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            {"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise ApiError(401, "the API key is not valid", {"WWW-Authenticate": "Bearer"})


async def require_api_key(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header: str | None = Depends(_header),
) -> None:
    """check_api_key as a dependency, which also puts both schemes in the OpenAPI document."""
    check_api_key(request)


# For routes that check the key in their body (the hot path skips dependency solving).
API_KEY_SECURITY = [{"HTTPBearer": []}, {"APIKeyHeader": []}]

EngineDep = Annotated[InferenceEngine, Depends(get_engine)]
DecoderDep = Annotated[Decoder, Depends(get_decoder)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
