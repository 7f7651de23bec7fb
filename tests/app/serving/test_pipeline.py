"""The pipeline's contract: a Job in (uploads or pixels), an Outcome out (decode -> batch ->
predict), under one admission, with the per-stage seconds; the limits it enforces."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from app.errors import ApiError
from app.serving.admission import Admission
from app.serving.decode import Decoder
from app.serving.engine import InferenceEngine
from app.serving.pipeline import Job, Outcome, Pipeline
from model.images.decode import UnsupportedImageError
from model.images.silhouette import prepare_photo
from model.network.checkpoint import load_checkpoint
from tests.helpers import object_photo, png_bytes

T = TypeVar("T")
ENGINE = {"max_batch_size": 8, "max_wait_s": 0.0, "queue_size": 256}


def _with_pipeline(checkpoint: Path, use: Callable[[Pipeline], Awaitable[T]], cap: int = 64) -> T:
    async def run() -> T:
        engine = InferenceEngine(load_checkpoint(checkpoint), "cpu", **ENGINE)
        decoder = Decoder(1, 10**7, 1 << 26, processes=0)
        await engine.start()
        try:
            return await use(Pipeline(decoder, Admission(cap), engine, max_images=4))
        finally:
            await engine.stop()
            await decoder.close()

    return asyncio.run(run())


PHOTOS = [png_bytes(object_photo(True)), png_bytes(object_photo(False))]


def test_uploads_are_decoded_batched_and_predicted_as_one_forward(tiny_checkpoint: Path) -> None:
    outcome: Outcome = _with_pipeline(
        tiny_checkpoint, lambda p: p.run(Job([("a.png", PHOTOS[0]), ("b.png", PHOTOS[1])]))
    )
    images = np.stack([prepare_photo(d) for d in PHOTOS])
    assert all(np.array_equal(p.image, x) for p, x in zip(outcome.prepared, images, strict=True))
    engine = InferenceEngine(load_checkpoint(tiny_checkpoint), "cpu", **ENGINE)
    np.testing.assert_allclose(outcome.result.probs, engine.forward(images).probs, atol=1e-5)
    assert set(outcome.stages) == {"decode", "preprocess", "queue", "inference"}
    assert outcome.maps is None


def test_pixels_skip_decoding_and_explain_adds_a_map_per_image(tiny_checkpoint: Path) -> None:
    pixels = [prepare_photo(d) for d in PHOTOS]

    async def both(p: Pipeline) -> tuple[Outcome, Outcome]:
        return await p.run(Job(pixels=pixels)), await p.run(Job([("a", PHOTOS[0])], explain=True))

    plain, explained = _with_pipeline(tiny_checkpoint, both)
    assert plain.prepared == [] and set(plain.stages) == {"queue", "inference"}
    assert explained.maps is not None and explained.maps[0].shape == (28, 28)
    np.testing.assert_allclose(explained.result.probs[0], plain.result.probs[0], atol=1e-5)


def test_limits_and_named_errors(tiny_checkpoint: Path) -> None:
    async def limits(p: Pipeline) -> None:
        with pytest.raises(ApiError, match="more than 4 images"):
            await p.run(Job([("a", PHOTOS[0])] * 5))
        with pytest.raises(UnsupportedImageError, match=r"^b\.pdf: "):
            await p.run(Job([("a", PHOTOS[0]), ("b.pdf", b"%PDF-1.4")], named=True))
        with p.admission.admit(2), pytest.raises(ApiError) as busy:
            await p.run(Job([("a", PHOTOS[0])]))
        assert busy.value.status == 503 and busy.value.headers == {"Retry-After": "1"}
        assert p.admission.held == 0

    _with_pipeline(tiny_checkpoint, limits, cap=2)
