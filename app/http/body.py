"""The request body as HTTP delivers it: read whole under a size limit (413), and the request's
two deadlines on one timer (408 for the body, 504 for the answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request

from app.config import Settings
from app.errors import ApiError

# Framing a body may carry on top of its images: multipart headers, an inference request's JSON.
BODY_SLACK = 64 * 1024


class Deadline:
    """A request's two deadlines on one timer: its body within BODY_TIMEOUT_S (408), then its
    answer within REQUEST_TIMEOUT_S: decoding, queueing and inference together (504).

    One asyncio.timeout rescheduled rather than two: each costs ~8 us, a few per cent of a small
    request's CPU at c=32."""

    def __init__(self, settings: Settings) -> None:
        self.body_s, self.answer_s = settings.body_timeout_s, settings.request_timeout_s
        self.receiving = True
        self._timer = asyncio.timeout(self.body_s)

    async def __aenter__(self) -> Deadline:
        await self._timer.__aenter__()
        return self

    def body_received(self) -> None:
        self.receiving = False
        self._timer.reschedule(asyncio.get_running_loop().time() + self.answer_s)

    async def __aexit__(self, *exc_info: Any) -> None:
        try:
            await self._timer.__aexit__(*exc_info)
        except TimeoutError:
            if self.receiving:
                raise ApiError(
                    408,
                    f"the request body did not arrive within {self.body_s:g} s",
                    {"Connection": "close"},
                ) from None
            raise ApiError(
                504, f"no result within the request timeout of {self.answer_s:g} s"
            ) from None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, stopping with 413 as soon as it passes the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the upload is {int(declared):,} bytes; the limit is {limit:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the upload is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
