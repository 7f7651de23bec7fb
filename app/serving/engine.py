"""Inference engine: the model on its device, fed by a dynamic micro-batching queue."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

import numpy as np
from prometheus_client import Gauge

from app.config import EngineOptions, Settings, resolve_engine_options
from app.metrics import Metrics
from app.serving.admission import QueueFullError, ShuttingDownError
from app.serving.onnx_runner import build_runner
from app.serving.runner import ModelOptions, Scores
from model.images.silhouette import NATIVE_SIZE
from model.network.checkpoint_info import CheckpointInfo

log = logging.getLogger("app.serving.engine")


@dataclass
class Result:
    """Class probabilities and garment scores (runner.Scores) for a job's images, and where
    its time went."""

    probs: list[list[float]]
    garment: list[float]
    queue_s: float
    inference_s: float
    batch_size: int


@dataclass
class _Job:
    images: Sequence[np.ndarray]  # each (28, 28) uint8
    future: asyncio.Future[Result]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.perf_counter)


class InferenceEngine:
    """Groups concurrent requests into forward passes run on one inference thread.

    The thread takes its next batch itself, the moment the previous forward pass ends. Had the
    event loop to dispatch it, the model would sit idle while the loop answered the last batch
    and parsed the next requests; this way the two overlap.
    """

    def __init__(
        self,
        ckpt: CheckpointInfo,
        device: str,
        *,
        max_batch_size: int,
        max_wait_s: float,
        queue_size: int,
        metrics: Metrics | None = None,
        options: ModelOptions | None = None,
    ) -> None:
        self.ckpt = ckpt
        self.device = device  # "cpu", "cuda:0", ...
        # The model name and version its answers carry: the repository's, once it loads it.
        self.served_as: tuple[str, int] = (ckpt.architecture, 1)
        self.options = options or ModelOptions()
        self.runner = build_runner(ckpt, device, self.options)
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self.metrics = metrics or Metrics()
        self.ready = False
        self.forward_passes = 0
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued_images = 0
        self._lock = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def forward(self, images: np.ndarray) -> Scores:
        """The network's Scores for (n, 28, 28) uint8 images, run on the calling thread."""
        return self.runner(images)

    def _labels(self) -> tuple[str, str]:
        name, version = self.served_as
        return name, str(version)

    def _queue_depth(self) -> Gauge:
        return self.metrics.model_queue_depth.labels(*self._labels())

    @property
    def queued_images(self) -> int:
        """Images waiting for a forward pass."""
        return self._queued_images

    async def start(self) -> None:
        """Warm up (allocator, kernel choice) at batch 1 and the largest batch, then serve."""
        loop = asyncio.get_running_loop()
        for n in sorted({1, self.max_batch_size}):
            blank = np.zeros((n, NATIVE_SIZE, NATIVE_SIZE), dtype=np.uint8)
            await loop.run_in_executor(None, self.forward, blank)
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="inference", daemon=True)
        self._thread.start()
        self.ready = True

    async def stop(self) -> None:
        """Stop batching; pending requests fail, the thread ends after its current batch."""
        self.ready = False
        with self._lock:
            self._stopping = True
            self._lock.notify()
            pending, self._jobs = list(self._jobs), collections.deque()
            self.metrics.queue_depth.dec(self._queued_images)
            self._queued_images = 0
        for job in pending:
            if not job.future.done():
                job.future.set_exception(ShuttingDownError("the service is shutting down"))
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    async def infer(self, images: Sequence[np.ndarray]) -> Result:
        """Probabilities for (28, 28) uint8 images, batched with whatever else is waiting."""
        n = len(images)
        loop = asyncio.get_running_loop()
        job = _Job(images, loop.create_future(), loop)
        with self._lock:
            if self._stopping:
                raise ShuttingDownError("the service is shutting down")
            if self._queued_images + n > self.queue_size:
                raise QueueFullError(f"the inference queue is full ({self.queue_size} images)")
            self._jobs.append(job)
            self._queued_images += n
            self.metrics.queue_depth.inc(n)
            self._lock.notify()
        self._queue_depth().set(self._queued_images)
        # No timer here: the caller's deadline covers decoding, queueing and inference at once;
        # a job whose caller gave up is skipped when its batch is taken.
        return await job.future

    def _take_batch(self) -> list[_Job] | None:
        """Wait for work, give a quiet queue max_wait to fill, take up to max_batch_size images."""
        with self._lock:
            while not self._jobs and not self._stopping:
                self._lock.wait()
            if self._stopping:
                return None
            deadline = self._jobs[0].enqueued + self.max_wait_s
            while self._queued_images < self.max_batch_size and not self._stopping:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
            jobs: list[_Job] = []
            size = 0
            while self._jobs:
                job = self._jobs[0]
                if jobs and size + len(job.images) > self.max_batch_size:
                    break
                self._jobs.popleft()
                self._queued_images -= len(job.images)
                self.metrics.queue_depth.dec(len(job.images))
                if job.future.done():  # timed out or its client went away
                    continue
                jobs.append(job)
                size += len(job.images)
        self._queue_depth().set(self._queued_images)
        return jobs

    def _serve(self) -> None:
        """The inference thread: batches until stop()."""
        while (jobs := self._take_batch()) is not None:
            if not jobs:
                continue
            started = time.perf_counter()
            try:
                # Joining, the forward pass and the conversion to Python floats all happen here,
                # so the event loop never calls into the model (and never queues for the GIL after).
                scores = self.forward(np.stack([x for j in jobs for x in j.images]))
                probs, garment = scores.probs.tolist(), scores.garment.tolist()
            except Exception as exc:  # a failed forward fails its requests, not the thread
                log.exception("forward pass failed")
                for job in jobs:
                    job.loop.call_soon_threadsafe(_fail, job.future, exc)
                continue
            inference_s = time.perf_counter() - started
            self.forward_passes += 1
            self.metrics.batch_size.labels(*self._labels()).observe(len(probs))
            offset = 0
            for job in jobs:
                n = len(job.images)
                result = Result(
                    probs[offset : offset + n],
                    garment[offset : offset + n],
                    started - job.enqueued,
                    inference_s,
                    len(probs),
                )
                job.loop.call_soon_threadsafe(_succeed, job.future, result)
                offset += n


def _succeed(future: asyncio.Future[Result], result: Result) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future[Result], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class Given(TypedDict, total=False):
    """What build_engine's caller may already have: a metrics registry, resolved options."""

    metrics: Metrics
    options: EngineOptions


def build_engine(
    settings: Settings, ckpt: CheckpointInfo, device: str, **given: Unpack[Given]
) -> InferenceEngine:
    """The inference engine the settings describe, not yet started: with the given metrics
    registry and resolved options, else a registry of its own and the settings' defaults."""
    options = given.get("options") or resolve_engine_options(settings, device, ckpt.input_size)
    metrics = given.get("metrics")
    return InferenceEngine(
        ckpt,
        device,
        max_batch_size=options.max_batch_size,
        max_wait_s=settings.max_wait_ms / 1000,
        queue_size=settings.queue_size,
        metrics=metrics,
        options=options.model,
    )
