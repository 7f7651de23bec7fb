import asyncio
import contextlib
import io
from collections.abc import AsyncIterator

import numpy as np
import pytest
from PIL import Image

from app.serving.decode import DecodeBudget, Decoder
from model.preprocess import CorruptImageError, ImageError, prepare_photo


def test_budget_serves_in_order_and_lets_an_oversized_image_run_alone() -> None:
    async def scenario() -> list[str]:
        budget, order = DecodeBudget(100), []

        async def decode(name: str, size: int, seconds: float) -> None:
            taken = await budget.take(size)
            order.append(f"{name}+")
            assert budget.held <= budget.limit
            await asyncio.sleep(seconds)
            order.append(f"{name}-")
            budget.give_back(taken)

        await asyncio.gather(
            decode("a", 60, 0.02), decode("huge", 500, 0.02), decode("b", 10, 0.01)
        )
        assert budget.held == 0
        return order

    # b fits beside a but waits its turn behind huge, which runs once a has given back.
    assert asyncio.run(scenario()) == ["a+", "a-", "huge+", "huge-", "b+", "b-"]


def test_a_waiter_that_gives_up_takes_nothing() -> None:
    async def scenario() -> int:
        budget = DecodeBudget(100)
        first = await budget.take(80)
        waiter = asyncio.ensure_future(budget.take(50))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        budget.give_back(first)
        assert await budget.take(100) == 100
        return budget.held

    assert asyncio.run(scenario()) == 100


def _photos() -> list[bytes]:
    """Small uploads of several kinds: JPEG, PNG with alpha, grayscale."""
    rng = np.random.default_rng(0)
    out = []
    for mode, fmt in (("RGB", "JPEG"), ("RGBA", "PNG"), ("L", "PNG")):
        pixels = rng.integers(0, 255, (96, 72, len(mode)), dtype=np.uint8).squeeze()
        buf = io.BytesIO()
        Image.fromarray(pixels, mode).save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


async def _ready(decoder: Decoder) -> None:
    for _ in range(600):  # starting takes about a second
        if decoder.processes[0].ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the decoding process never became ready")


@contextlib.asynccontextmanager
async def _decoder_with_a_process() -> AsyncIterator[Decoder]:
    """A Decoder whose one decoding process has started and answered its warm-up photo."""
    decoder = Decoder(1, 10**7, 1 << 26, processes=1)
    try:
        await decoder.warm_up()
        await _ready(decoder)
        yield decoder
    finally:
        await decoder.close()


def test_a_decoding_process_prepares_what_the_loop_would() -> None:
    async def scenario() -> None:
        async with _decoder_with_a_process() as decoder:
            for data in _photos():
                inline = await decoder.prepare(data, busy=False)
                remote = await decoder.prepare(data, busy=True)
                assert np.array_equal(inline.image, remote.image)
                assert np.array_equal(remote.image, prepare_photo(data))
                assert remote.decode_s > 0 and remote.preprocess_s > 0
            assert not decoder.processes[0].pending
            # A bad upload fails as on the loop, with the same error type.
            for bad in (_photos()[0][:600], _photos()[1][:-100], b"not an image"):
                with pytest.raises(ImageError) as remote:
                    await decoder.processes[0].prepare(bad)
                with pytest.raises(type(remote.value), match=str(remote.value)[:20]):
                    prepare_photo(bad)

    asyncio.run(scenario())


def test_a_dead_decoding_process_is_replaced() -> None:
    async def scenario() -> None:
        async with _decoder_with_a_process() as decoder:
            process = decoder.processes[0]
            data = _photos()[0]
            held = asyncio.ensure_future(process.prepare(data))
            # A decoder crash, as a hostile image could cause one: the process dies hard.
            assert process._proc is not None
            process._proc.kill()
            with pytest.raises(CorruptImageError, match="decoder failed"):
                await held
            await _ready(decoder)  # a new process
            assert np.array_equal(
                (await decoder.prepare(data, busy=True)).image, prepare_photo(data)
            )

    asyncio.run(scenario())
