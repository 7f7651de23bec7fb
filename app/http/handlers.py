"""The exception handlers: every error as JSON {"detail": "..."} with the right status; bad input
never becomes a 500.

Under /v2 (the Open Inference Protocol) the same errors read {"error": "..."}, as that protocol
says; the statuses are the same."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from app.errors import CLIENT_CLOSED, ApiError
from app.protocol import oip
from model.images.decode import (
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


def error_response(
    path: str, status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The error answer for a request path: {"detail": ...}, or {"error": ...} under /v2."""
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
        return error_response(request.url.path, exc.status, exc.detail, exc.headers)

    @app.exception_handler(ImageError)
    async def image_error(request: Request, exc: ImageError) -> JSONResponse:
        status = next((s for t, s in IMAGE_ERROR_STATUS.items() if isinstance(exc, t)), 422)
        return error_response(request.url.path, status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(request.url.path, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request.url.path, 422, _validation_message(exc))

    @app.exception_handler(ClientDisconnect)
    async def client_went_away(request: Request, _: ClientDisconnect) -> JSONResponse:
        # Not a server error: counted apart as 499 (nginx's "client closed request"), one line.
        log.info("client closed the connection during %s %s", request.method, request.url.path)
        return error_response(
            request.url.path, CLIENT_CLOSED, "the client closed the connection before the answer"
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request.url.path, 500, "internal server error")
