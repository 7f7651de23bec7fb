"""Inference engine: the model on its device, fed by a dynamic micro-batching queue."""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from PIL import Image
from torch import Tensor

from app.metrics import Metrics
from model.checkpoint import Checkpoint
from model.preprocess import NATIVE_SIZE, WORKING_SIZE, prepare_photo, to_model_input

log = logging.getLogger("app.engine")


class QueueFullError(Exception):
    """The queue holds queue_size images already."""


class InferenceTimeoutError(Exception):
    """A request waited longer than its timeout."""


def describe_device(device: torch.device) -> str:
    """A log-friendly name: 'cuda:0 (NVIDIA H200)' or 'cpu (no CUDA device found)'."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    reason = (
        "CUDA available but not chosen" if torch.cuda.is_available() else "no CUDA device found"
    )
    return f"cpu ({reason}, {torch.get_num_threads()} threads)"


@dataclass
class Result:
    """Class probabilities for a job's images and where its time went."""

    probs: Tensor
    queue_s: float
    inference_s: float
    batch_size: int


@dataclass
class _Job:
    images: Tensor  # (n, 28, 28) uint8
    future: asyncio.Future[Result]
    enqueued: float = field(default_factory=time.perf_counter)


class InferenceEngine:
    """Groups concurrent requests into forward passes run on one inference thread."""

    def __init__(
        self,
        ckpt: Checkpoint,
        device: torch.device,
        *,
        max_batch_size: int,
        max_wait_s: float,
        queue_size: int,
        timeout_s: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.ckpt = ckpt
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self.model = ckpt.model.to(device).eval()
        self.dtype = next(self.model.parameters()).dtype
        norm = ckpt.meta["normalization"]
        self.mean, self.std = float(norm["mean"]), float(norm["std"])
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.metrics = metrics or Metrics()
        self.ready = False
        self.forward_passes = 0
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued_images = 0
        self._wakeup = asyncio.Event()
        # One thread owns the model: forward passes never overlap and never block the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._worker: asyncio.Task[None] | None = None

    @torch.inference_mode()
    def _forward(self, images: Tensor) -> Tensor:
        # uint8 crosses to the device (4x fewer bytes than float), then resize and normalise there.
        x = images.to(self.device, non_blocking=True)
        logits = self.model(to_model_input(x, self.ckpt.input_size, self.mean, self.std))
        return torch.softmax(logits.float(), dim=1).cpu()

    @property
    def queued_images(self) -> int:
        """Images waiting for a forward pass."""
        return self._queued_images

    async def start(self) -> None:
        """Warm up (allocator, kernel choice) at batch 1 and the largest batch, then serve."""
        loop = asyncio.get_running_loop()
        # The first photo pays for Pillow's plugin loading and numpy's lazy set-up; pay it here.
        for fmt in ("PNG", "JPEG"):
            buf = io.BytesIO()
            Image.new("RGB", (2 * WORKING_SIZE, WORKING_SIZE), "white").save(buf, format=fmt)
            await loop.run_in_executor(None, prepare_photo, buf.getvalue())
        for n in sorted({1, self.max_batch_size}):
            blank = torch.zeros(n, NATIVE_SIZE, NATIVE_SIZE, dtype=torch.uint8)
            await loop.run_in_executor(self._executor, self._forward, blank)
        self._wakeup = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name="batcher")
        self.ready = True

    async def stop(self) -> None:
        """Stop batching; pending requests fail, the thread is released."""
        self.ready = False
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._jobs:
            job = self._jobs.popleft()
            if not job.future.done():
                job.future.set_exception(QueueFullError("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def infer(self, images: Tensor) -> Result:
        """Probabilities for (n, 28, 28) uint8 images, batched with whatever else is waiting."""
        n = len(images)
        if self._queued_images + n > self.queue_size:
            raise QueueFullError(f"the inference queue is full ({self.queue_size} images)")
        job = _Job(images, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._queued_images += n
        self.metrics.queue_depth.set(self._queued_images)
        self._wakeup.set()
        try:
            return await asyncio.wait_for(job.future, self.timeout_s)
        except TimeoutError as exc:
            raise InferenceTimeoutError(
                f"no result within the request timeout of {self.timeout_s:g} s"
            ) from exc

    def _take_batch(self) -> list[_Job]:
        jobs: list[_Job] = []
        size = 0
        while self._jobs:
            job = self._jobs[0]
            if jobs and size + len(job.images) > self.max_batch_size:
                break
            self._jobs.popleft()
            self._queued_images -= len(job.images)
            if job.future.done():  # timed out or its client went away
                continue
            jobs.append(job)
            size += len(job.images)
        self.metrics.queue_depth.set(self._queued_images)
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._jobs:
                self._wakeup.clear()
                await self._wakeup.wait()
            # Requests that arrive during a forward pass form the next batch by themselves;
            # the wait only helps a quiet queue gather a few more.
            deadline = self._jobs[0].enqueued + self.max_wait_s
            while self._queued_images < self.max_batch_size:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            jobs = self._take_batch()
            if not jobs:
                continue
            batch = torch.cat([j.images for j in jobs]) if len(jobs) > 1 else jobs[0].images
            started = time.perf_counter()
            try:
                probs = await loop.run_in_executor(self._executor, self._forward, batch)
            except Exception as exc:  # a failed forward fails its requests, not the worker
                log.exception("forward pass failed")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            inference_s = time.perf_counter() - started
            self.forward_passes += 1
            self.metrics.batch_size.observe(len(batch))
            offset = 0
            for job in jobs:
                n = len(job.images)
                if not job.future.done():
                    job.future.set_result(
                        Result(
                            probs[offset : offset + n],
                            started - job.enqueued,
                            inference_s,
                            len(batch),
                        )
                    )
                offset += n
