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
    """When API_KEY is set, accept it as 'Authorization: Bearer <key>' or 'X-API-Key'; else 401.
    Every credential sent must be right: a wrong one beside a right one is still refused."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    given = []
    if (header := request.headers.get("x-api-key")) is not None:
        given.append(header)
    if (authorization := request.headers.get("authorization")) is not None:
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
