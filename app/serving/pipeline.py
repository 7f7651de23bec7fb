"""The stages every prediction route shares, whatever its wire format: the body read under a
deadline, decoding under one admission, batched inference, per-stage seconds.

/predict (multipart) and the Open Inference Protocol routes differ only in how they read a
request and write an answer; both come here in between, so limits, batching and errors agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from fastapi import Request

from app.config import Settings
from app.errors import ApiError, echo
from app.serving.admission import Admission, EngineUnavailableError
from app.serving.decode import Decoder, DecoderUnavailableError, Prepared
from app.serving.engine import InferenceEngine, Result
from model.images.decode import ImageError
from model.network import saliency

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


def too_many_images(limit: int) -> ApiError:
    """The answer to a request of more images than the limit, however it sent them."""
    return ApiError(422, f"more than {limit} images sent; the limit is {limit}")


@dataclass(frozen=True)
class Pipeline:
    """The running stages a prediction goes through: the upload decoder, the admission count and
    the batching engine (started by the app's lifespan)."""

    decoder: Decoder
    admission: Admission
    engine: InferenceEngine
    max_images: int  # per request: MAX_BATCH_IMAGES

    def check_count(self, n: int) -> None:
        """422 for a request of more than max_images images: the one place the limit lives."""
        if n > self.max_images:
            raise too_many_images(self.max_images)

    @contextmanager
    def admitted(self, n: int) -> Iterator[bool]:
        """Hold n images' places in the service (503 when QUEUE_SIZE are held already: decoding,
        queued or in a forward pass); yields whether other requests are in flight."""
        try:
            with self.admission.admit(n):
                yield self.admission.held > n
        except EngineUnavailableError as exc:
            raise ApiError(503, str(exc), {"Retry-After": "1"}) from exc

    async def _prepare(self, name: str | None, data: bytes, named: bool, busy: bool) -> Prepared:
        try:
            return await self.decoder.prepare(data, busy)
        except DecoderUnavailableError as exc:
            raise ApiError(503, str(exc), {"Retry-After": "1"}) from exc
        except ImageError as exc:
            if not named:
                raise
            # Name the file; the same error type keeps the status it maps to.
            raise type(exc)(f"{echo(name) or 'image'}: {exc}") from exc

    async def classify(
        self, uploads: Sequence[tuple[str | None, bytes]], named: bool = False
    ) -> tuple[list[Prepared], Result]:
        """Decode the uploads and run them through the network under one admission. With
        `named`, an image error names its upload. The caller's Deadline bounds the time."""
        self.check_count(len(uploads))
        with self.admitted(len(uploads)) as busy:
            prepared = [await self._prepare(n, d, named, busy) for n, d in uploads]
            return prepared, await self.engine.infer([p.image for p in prepared])

    async def classify_explained(
        self, uploads: Sequence[tuple[str | None, bytes]], named: bool = False
    ) -> tuple[list[Prepared], Result, list[np.ndarray]]:
        """classify, and each image's occlusion saliency (model.network.saliency): the image and its
        occluded copies go through the network in the same forward pass."""
        self.check_count(len(uploads))
        step = 1 + len(saliency.MASKS)
        if len(uploads) * step > self.engine.queue_size:
            most = self.engine.queue_size // step
            raise ApiError(
                422,
                f"explain=true takes at most {most} image(s) a request here: each costs {step} "
                f"images of the queue (QUEUE_SIZE={self.engine.queue_size})",
            )
        with self.admitted(len(uploads)) as busy:
            prepared = [await self._prepare(n, d, named, busy) for n, d in uploads]
            batch = [x for p in prepared for x in (p.image, *saliency.occluded_copies(p.image))]
            result = await self.engine.infer(batch)
        rows = np.asarray(result.probs, dtype=np.float32).reshape(len(prepared), step, -1)
        maps = [saliency.occlusion_saliency(r) for r in rows]
        return (
            prepared,
            replace(result, probs=result.probs[::step], garment=result.garment[::step]),
            maps,
        )

    async def classify_pixels(self, images: Sequence[np.ndarray]) -> Result:
        """Ready-made (28, 28) uint8 images through the network under one admission."""
        self.check_count(len(images))
        with self.admitted(len(images)):
            return await self.engine.infer(images)


def stages(prepared: Sequence[Prepared], result: Result) -> dict[str, float]:
    """Seconds per stage of one request (decode and preprocess summed over its images)."""
    return {
        "decode": sum(p.decode_s for p in prepared),
        "preprocess": sum(p.preprocess_s for p in prepared),
        "queue": result.queue_s,
        "inference": result.inference_s,
    }
