"""The one sequence of every prediction route: under the request's deadlines, read the body,
then hand it to the route's protocol, which runs the pipeline and encodes the answer; record the
stages. Routes are adapters that name the body's limit and the protocol's exchange."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response

from app.http.body import Deadline, read_body
from app.http.deps import Services
from app.protocol.answers import Answer

# A protocol's exchange: the body (and the request's start) to the encoded answer.
Exchange = Callable[[bytes, float], Awaitable[Answer]]


async def serve(request: Request, services: Services, limit: int, exchange: Exchange) -> Response:
    """Answer one prediction request whose body may hold `limit` bytes."""
    start = time.perf_counter()
    async with Deadline(services.settings) as deadline:
        body = await read_body(request, limit)
        deadline.body_received()
        answer = await exchange(body, start)
    services.metrics.observe_stages(**answer.stages)
    return Response(answer.body, media_type=answer.media_type, headers=answer.headers or None)
