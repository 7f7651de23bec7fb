"""Every error as JSON {"detail": "..."} with the right status; bad input never becomes a 500.

Under /v2 (the Open Inference Protocol) the same errors read {"error": "..."}, as that protocol
says; the statuses are the same."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from app import oip
from model.preprocess import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
)

log = logging.getLogger("app")

IMAGE_ERROR_STATUS: dict[type[ImageError], int] = {
    UnsupportedImageError: 415,
    CorruptImageError: 422,
    ImageTooLargeError: 413,
}


ECHO_MAX = 80
CLIENT_CLOSED = 499


def echo(text: str | None, limit: int = ECHO_MAX) -> str:
    """Client input quoted back in an error detail: printable, and cut after `limit` characters
    (a 40,000-character header must not come back whole)."""
    text = "".join(c if c.isprintable() else "?" for c in (text or "")[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "..."


class ApiError(Exception):
    """An error answer: status, one-sentence detail, optional headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def _json(
    request: Request, status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    path = request.url.path
    key = "error" if path == oip.PREFIX or path.startswith(oip.PREFIX + "/") else "detail"
    return JSONResponse({key: detail}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        where = f"{loc[0]} parameter {'.'.join(loc[1:])}" if len(loc) > 1 else ".".join(loc)
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into {"detail": "..."}."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _json(request, exc.status, exc.detail, exc.headers)

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError) -> JSONResponse:
        status = next((s for t, s in IMAGE_ERROR_STATUS.items() if isinstance(exc, t)), 422)
        return _json(request, status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _json(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(request, 422, _validation_message(exc))

    @app.exception_handler(ClientDisconnect)
    async def client_went_away(request: Request, _: ClientDisconnect) -> JSONResponse:
        # Not a server error: counted apart as 499 (nginx's "client closed request"), one line.
        log.info("client closed the connection during %s %s", request.method, request.url.path)
        return _json(request, CLIENT_CLOSED, "the client closed the connection before the answer")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json(request, 500, "internal server error")
