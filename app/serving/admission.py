"""Admission: how many images the service holds at once, from decoding to the end of their
forward pass, and the errors that say why no more are taken."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

from app.metrics import Metrics


class EngineUnavailableError(Exception):
    """The engine takes no more work now: see the subclass for why."""


class QueueFullError(EngineUnavailableError):
    """The queue holds queue_size images already."""


class ShuttingDownError(EngineUnavailableError):
    """The engine is stopping (or stopped): pending and new requests fail."""


class Admission:
    """Images the service holds at once, from decoding to the end of their forward pass.

    The inference queue alone bounds too little: photos used to wait, unbounded, for a decode
    thread, so overload never reached a 503 (measured: 256 clients, QUEUE_SIZE=8, every request
    200 after up to 1.3 s). Checked on the event loop, so a plain counter is enough.
    """

    def __init__(self, capacity: int, metrics: Metrics | None = None) -> None:
        self.capacity = capacity
        self.held = 0
        self.metrics = metrics or Metrics()
        # With several models ready, each holds at most its share of the capacity: one model's
        # flood leaves the others their places (the model repository sets `models`).
        self.models = 1
        self._by_model: collections.Counter[str] = collections.Counter()

    def set_models(self, models: int) -> None:
        """How many models share the capacity now."""
        self.models = models

    @property
    def share(self) -> int:
        """The most images one model may hold."""
        return max(1, self.capacity // max(1, self.models))

    @contextlib.contextmanager
    def admit(self, n: int, model: str = "") -> Iterator[None]:
        """Hold n images for the block, on behalf of `model`; QueueFullError when they do not
        fit the capacity, or the model's share of it."""
        if self.held + n > self.capacity:
            raise QueueFullError(
                f"the service is at capacity ({self.capacity} images being decoded or queued)"
            )
        if self.models > 1 and self._by_model[model] + n > self.share:
            raise QueueFullError(
                f"model '{model}' holds its share of the capacity ({self.share} of "
                f"{self.capacity} images, shared by {self.models} models)"
            )
        self.held += n
        self._by_model[model] += n
        self.metrics.in_flight.set(self.held)
        try:
            yield
        finally:
            self.held -= n
            self._by_model[model] -= n
            self.metrics.in_flight.set(self.held)
