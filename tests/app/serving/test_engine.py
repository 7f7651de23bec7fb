import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from app.serving.admission import EngineUnavailableError, ShuttingDownError
from app.serving.engine import InferenceEngine
from model.data.fashion_mnist import Split
from model.network.checkpoint import load_checkpoint


def _engine(checkpoint: Path, **kw: float) -> InferenceEngine:
    options = {"max_batch_size": 8, "max_wait_s": 0.0, "queue_size": 64}
    return InferenceEngine(load_checkpoint(checkpoint), "cpu", **{**options, **kw})


def _inference_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "inference"]


def test_results_match_a_direct_forward_and_batch_up_to_the_limit(
    tiny_checkpoint: Path, test_images: Split
) -> None:
    images = list(test_images.images[:20].numpy())

    async def run() -> tuple[InferenceEngine, list[list[float]]]:
        engine = _engine(tiny_checkpoint, max_wait_s=0.2)
        await engine.start()
        try:
            results = await asyncio.gather(*(engine.infer([x]) for x in images))
        finally:
            await engine.stop()
        assert max(r.batch_size for r in results) == 8  # 20 waiting images, batches of 8
        return engine, [r.probs[0] for r in results], [r.garment[0] for r in results]

    engine, probs, garment = asyncio.run(run())
    expected = engine.forward(np.stack(images))
    np.testing.assert_allclose(np.array(probs), expected.probs, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(np.array(garment), expected.garment, atol=1e-6, rtol=1e-5)


def test_stop_fails_waiting_requests_and_ends_the_thread(
    tiny_checkpoint: Path, test_images: Split
) -> None:
    async def run() -> None:
        engine = _engine(tiny_checkpoint, max_wait_s=30.0)  # the job waits for a full batch
        await engine.start()
        assert len(_inference_threads()) == 1
        waiting = asyncio.create_task(engine.infer([test_images.images[0].numpy()]))
        while engine.queued_images == 0:
            await asyncio.sleep(0.001)
        await engine.stop()
        with pytest.raises(ShuttingDownError, match="shutting down"):
            await waiting
        with pytest.raises(EngineUnavailableError, match="shutting down"):
            await engine.infer([test_images.images[0].numpy()])  # and so is a new request

    asyncio.run(run())
    assert _inference_threads() == []
