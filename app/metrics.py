"""The service's Prometheus metrics, one registry per app so several apps (tests) never collide.

Every layer records into it: the HTTP middleware counts requests, the pipeline times stages,
admission and the engine report what they hold."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram

STAGES = ("decode", "preprocess", "queue", "inference")
MODEL_LABELS = ("model", "version")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        GCCollector(registry=self.registry)  # python_gc_*: the collector's work, per generation
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
            "Images per forward pass, by model and version",
            MODEL_LABELS,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.decoder_restarts = Counter(
            "fashion_decoder_restarts",
            "Decoding processes that died and were replaced (their photos retried once)",
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "fashion_queue_depth", "Images waiting for a forward pass", registry=self.registry
        )
        self.model_queue_depth = Gauge(
            "fashion_model_queue_depth",
            "Images waiting for a forward pass, by model and version",
            MODEL_LABELS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "fashion_in_flight_images",
            "Images admitted: being decoded, queued or in a forward pass",
            registry=self.registry,
        )
        for stage in STAGES:
            self.stage_seconds.labels(stage)

    def forget_model(self, name: str, version: int) -> None:
        """Drop an unloaded version's series: a repository that loads many stays small."""
        for metric in (self.batch_size, self.model_queue_depth):
            with contextlib.suppress(KeyError):  # it never ran a batch
                metric.remove(name, str(version))

    def observe_stages(self, **seconds: float) -> None:
        """Record one request's seconds per stage."""
        for stage, value in seconds.items():
            self.stage_seconds.labels(stage).observe(value)
