"""The hot path: POST /predict straight to its endpoint, past the router's matching and FastAPI's
request handler (the endpoint reads its own query and needs no dependency but the services).

It sits inside the exception handlers and the middlewares, so errors, headers, the API key and
the request metrics are the router's. Paired figures in docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, APIRouter
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.deps import Services

Endpoint = Callable[[Request, Services], Awaitable[Response]]


class PredictLane:
    """Sends POST <route.path> to `endpoint(request, services)`; everything else to `app`."""

    def __init__(self, app: ASGIApp, route: APIRoute, endpoint: Endpoint, services: Services):
        self.app, self.route, self.endpoint, self.services = app, route, endpoint, services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only the exact path, without a root path to strip: anything else is the router's.
        if (
            scope["type"] != "http"
            or scope["path"] != self.route.path
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        scope["route"], scope["endpoint"], scope["path_params"] = self.route, self.endpoint, {}
        response = await self.endpoint(Request(scope, receive, send), self.services)
        await response(scope, receive, send)


def install(app: FastAPI, router: APIRouter, path: str, services: Services) -> None:
    """Put a lane to the POST route at path of router (included in app) in front of the app's
    router, inside its exception handlers. The route's endpoint takes (request, services)."""
    (route,) = (
        r
        for r in router.routes
        if isinstance(r, APIRoute) and r.path == path and "POST" in r.methods
    )
    stack = app.router.middleware_stack
    app.router.middleware_stack = PredictLane(stack, route, route.endpoint, services)
