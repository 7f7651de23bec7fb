import asyncio
import contextlib
import http.client
import io
import os
import signal
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.serving.decode import DecodeBudget, DecodeProcess, Decoder, DecoderUnavailableError
from model.images.decode import CorruptImageError, ImageError
from model.images.silhouette import prepare_photo
from tests.helpers import CRASHING_WORKER, poll, served


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


async def _until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Return once condition() holds, polling; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.005)


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
        await decoder.start_processes()
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


def test_photos_held_by_a_dead_process_are_answered_by_its_successor() -> None:
    """kill -9 with several photos in the pipe: each is answered, right, by the next process."""

    async def scenario() -> None:
        async with _decoder_with_a_process() as decoder:
            process = decoder.processes[0]
            photos = _photos()
            assert process._proc is not None
            process._proc.send_signal(signal.SIGSTOP)  # they queue up behind its pipe
            held = [asyncio.ensure_future(process.prepare(d)) for d in photos]
            await _until(lambda: len(process.pending) == len(photos))
            process._proc.kill()
            for future, data in zip(held, photos, strict=True):
                assert np.array_equal((await future).image, prepare_photo(data))
            assert process.restarts == 1

    asyncio.run(scenario())


class CrashingProcess(DecodeProcess):
    """A decoding process whose program dies hard on an upload that starts with CRASH, and
    otherwise is the service's own: a real crash of a real process, without a switch in it."""

    COMMAND = (sys.executable, "-c", CRASHING_WORKER)


def test_an_upload_that_crashes_two_decoders_gets_a_422_saying_so() -> None:
    async def scenario() -> None:
        restarts: list[int] = []
        process = CrashingProcess(10**7, on_restart=lambda: restarts.append(1))
        await process.start(_photos()[0])
        try:
            innocent = asyncio.ensure_future(process.prepare(_photos()[1]))
            with pytest.raises(CorruptImageError, match="crashed the decoder twice"):
                await process.prepare(b"CRASH" + _photos()[2])
            assert np.array_equal((await innocent).image, prepare_photo(_photos()[1]))
            assert len(restarts) == process.restarts == 2
            # The third process serves on.
            answer = await process.prepare(_photos()[2])
            assert np.array_equal(answer.image, prepare_photo(_photos()[2]))
        finally:
            await process.close()

    asyncio.run(scenario())


class SilentSuccessor(DecodeProcess):
    """The first process is the service's; every later one never answers."""

    RETRY_WAIT_S = 0.5

    async def start(self, probe: bytes) -> None:
        if self.restarts:
            self.COMMAND = (sys.executable, "-c", "import time; time.sleep(60)")
        await super().start(probe)


def test_a_photo_no_process_answers_in_time_gets_503_not_422() -> None:
    async def scenario() -> None:
        process = SilentSuccessor(10**7)
        await process.start(_photos()[0])
        try:
            for _ in range(200):
                if process.ready:
                    break
                await asyncio.sleep(0.05)
            assert process._proc is not None
            process._proc.send_signal(signal.SIGSTOP)
            held = asyncio.ensure_future(process.prepare(_photos()[1]))
            await _until(lambda: len(process.pending) == 1)
            process._proc.kill()
            with pytest.raises(DecoderUnavailableError, match="retry shortly"):
                await held
        finally:
            if process._proc is not None and process._proc.returncode is None:
                process._proc.kill()  # the silent one reads no input: closing it would wait
            await process.close()

    asyncio.run(scenario())


def _worker_pids(parent: int) -> list[int]:
    """The decoding processes (app.serving.photo_worker) started by process `parent`."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(fields[1]) == parent and b"app.serving.photo_worker" in cmdline:
                pids.append(int(stat.parent.name))
    return pids


def _jpeg_400x534() -> bytes:
    rng = np.random.default_rng(3)
    pixels = np.full((534, 400, 3), 235, dtype=np.uint8)
    pixels[100:450, 80:320] = rng.integers(40, 90, 3, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.slow  # a real server under 16 clients, its decoder killed 5 times
def test_kill_9_of_the_decoder_under_load_fails_no_valid_photo(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """16 clients post a valid JPEG while the decoding process is killed 5 times: every answer
    is 200 (or 503, busy), never 422 or 500; after each kill a 200 comes (its successor took
    over); the restarts are counted."""
    photo = _jpeg_400x534()
    boundary = "killtestboundary"
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="image"; filename="p.jpg"\r\n\r\n'
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    answers: list[tuple[float, int]] = []
    done = threading.Event()

    with served(tiny_checkpoint, tmp_path / "server.log", DECODE_PROCESSES="1") as server:
        host, port = server.url.removeprefix("http://").split(":")

        def client() -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            while not done.is_set():
                conn.request("POST", "/predict", body, headers)
                response = conn.getresponse()
                response.read()
                answers.append((time.monotonic(), response.status))

        kills: list[float] = []
        with ThreadPoolExecutor(16) as pool:
            for _ in range(16):
                pool.submit(client)
            poll(lambda: len(answers) >= 16)  # all the clients under way
            for _ in range(5):
                pids = poll(lambda: _worker_pids(server.proc.pid))  # the last kill's successor
                os.kill(pids[0], signal.SIGKILL)
                killed = time.monotonic()
                kills.append(killed)
                # The successor answers: a 200 that left the server after the kill.
                poll(lambda k=killed: any(t > k and s == 200 for t, s in answers))
            done.set()
        metrics = urllib.request.urlopen(server.url + "/metrics", timeout=5).read().decode()
    statuses = Counter(status for _, status in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert len(kills) == 5
    assert "fashion_decoder_restarts_total 5.0" in metrics
    assert "decoding process died" in server.log_text()
