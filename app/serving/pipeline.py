"""The stages every prediction shares, whatever its wire format: decode -> batch -> predict.

A route's protocol (app.protocol) turns a request into a Job; `Pipeline.run` decodes its uploads
under one admission, hands the images to the batching engine, and returns an Outcome with the
per-stage seconds; the protocol then encodes the answer. /predict and the Open Inference Protocol
differ only at either end, so limits, batching and errors agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np

from app.errors import ApiError, echo
from app.serving.admission import Admission, EngineUnavailableError
from app.serving.decode import Decoder, DecoderUnavailableError, Prepared
from app.serving.engine import InferenceEngine, Result
from model.images.decode import ImageError
from model.network import saliency


def too_many_images(limit: int) -> ApiError:
    """The answer to a request of more images than the limit, however it sent them."""
    return ApiError(422, f"more than {limit} images sent; the limit is {limit}")


@dataclass(frozen=True)
class Job:
    """What a request asks of the pipeline: uploads (name, bytes) to decode, or ready (28, 28)
    uint8 pixels; with `named`, an image error names its upload; with `explain`, each image's
    occlusion saliency too."""

    uploads: Sequence[tuple[str | None, bytes]] = ()
    pixels: Sequence[np.ndarray] | None = None
    named: bool = False
    explain: bool = False


@dataclass(frozen=True)
class Outcome:
    """A job's answer: each upload's Prepared image (none for pixels), the network's Result, the
    saliency maps when asked for, and the seconds of each stage."""

    prepared: list[Prepared]
    result: Result
    maps: list[np.ndarray] | None = None

    @property
    def stages(self) -> dict[str, float]:
        """Seconds per stage (decode and preprocess summed over the images)."""
        seconds = {"queue": self.result.queue_s, "inference": self.result.inference_s}
        if not self.prepared:
            return seconds
        return {
            "decode": sum(p.decode_s for p in self.prepared),
            "preprocess": sum(p.preprocess_s for p in self.prepared),
            **seconds,
        }


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
            with self.admission.admit(n, self.engine.served_as[0]):
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

    async def run(self, job: Job) -> Outcome:
        """decode -> batch -> predict, under one admission; the caller's Deadline bounds it."""
        if job.pixels is not None:
            return Outcome([], await self.classify_pixels(job.pixels))
        if job.explain:
            return Outcome(*await self.classify_explained(job.uploads, job.named))
        return Outcome(*await self.classify(job.uploads, job.named))

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
