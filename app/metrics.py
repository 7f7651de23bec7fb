"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.security import headers_for

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STAGES = ("decode", "preprocess", "queue", "inference")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fashion_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "fashion_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "fashion_stage_duration_seconds",
            "Time per image in each prediction stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "fashion_batch_size",
            "Images per forward pass",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "fashion_queue_depth", "Images waiting for a forward pass", registry=self.registry
        )
        self.in_flight = Gauge(
            "fashion_in_flight_images",
            "Images admitted: being decoded, queued or in a forward pass",
            registry=self.registry,
        )
        for stage in STAGES:
            self.stage_seconds.labels(stage)

    def observe_stages(self, **seconds: float) -> None:
        """Record one request's seconds per stage."""
        for stage, value in seconds.items():
            self.stage_seconds.labels(stage).observe(value)


class RequestMetricsMiddleware:
    """Counts requests by route template (not raw path, to bound label cardinality), and adds
    the fixed security headers on the way (one wrapper per answer instead of two)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *headers_for(scope["path"])]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            # Clients choose the method name: any other one would be a label per name sent.
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - start)
