"""Decoding uploads: bytes to the (28, 28) uint8 image the network's input is made from.

The first stage of a request, apart from batching and inference (the engine's): the header is
read on the event loop, where a bad upload fails cheaply. A small photo (a product JPEG) is then
decoded and preprocessed on the loop when the service is quiet, and in a decoding process while
other requests are in flight; larger images on a thread pool, so one big photo never stalls the
other requests.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import io
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.serving.photo_worker import ANSWER, LENGTH, OK, TAIL
from model.images import decode as image_decode
from model.images.decode import (
    WORKING_SIZE,
    CorruptImageError,
    ImageError,
    decoded_bytes,
    open_image,
)
from model.images.silhouette import Box, prepare_photo, prepare_timed

log = logging.getLogger("app.serving.decode")

# Images at least this large in memory (a 2,000 x 2,000 PNG, say) are "large": decoded on a
# thread of lower CPU priority, and the allocator trimmed after each.
LARGE_BYTES = 16 << 20
LARGE_NICENESS = 5  # CFS weight 335 against the event loop's 1024
_LIBC = None
with contextlib.suppress(OSError, AttributeError):
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _LIBC.malloc_trim  # noqa: B018  (glibc only: elsewhere the attribute lookup fails)

# Photos that decode to at most this many pixels (a 400x534 JPEG decodes at 100x134) are
# prepared on the event loop: their analysis is numpy on small arrays that holds the GIL, so a
# thread would run it no faster (docs/performance.md, the photo path). Larger ones go to threads.
INLINE_MAX_PIXELS = 160 * 160
# Up to this size (a Fashion-MNIST image, a thumbnail) decoding takes about 0.05 ms, less than a
# hand-over to a decoding process: always on the loop.
THUMBNAIL_MAX_PIXELS = 64 * 64


@dataclass(frozen=True)
class Prepared:
    """One upload as a (28, 28) uint8 image, the seconds each step took, and the part of the
    photo the image shows."""

    image: np.ndarray
    decode_s: float
    preprocess_s: float
    box: Box


def _lower_thread_priority() -> None:
    """Run this thread at a lower CPU priority than the event loop (Linux nice is per thread).

    A 40 MP PNG takes 0.34 s of CPU to decode, and the loop must still answer health checks
    promptly; only large images, since nice 5 costs small ones throughput (docs/reliability.md,
    the large-image fix)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LARGE_NICENESS)


def release_free_memory() -> None:
    """Hand the allocator's free memory back to the OS (glibc's malloc_trim; elsewhere nothing).

    Freed bitmaps otherwise stay with the process: glibc serves large blocks from its heaps once
    it has seen a few, and eight 40 MP PNGs left 440 MB behind. Fixing its mmap threshold instead
    made every photo request slower (172 -> 97 a second at c=1: its float arrays got mmapped).
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _decode_and_preprocess(img: Image.Image, start: float, large: bool = False) -> Prepared:
    prepared = Prepared(*prepare_timed(img, start))
    if large:
        release_free_memory()  # about 1 ms, after large images only
    return prepared


class DecoderUnavailableError(Exception):
    """No decoding process could take a photo in time (the service answers 503)."""


@dataclass
class _Upload:
    """A photo sent to a decoding process, and how many processes died decoding it."""

    data: bytes
    future: asyncio.Future[Prepared]
    strikes: int = 0


class DecodeProcess:
    """A process (app.serving.photo_worker) that prepares small photos, with its own GIL.

    A photo's analysis holds the GIL, so under load the loop would be the bottleneck; here the
    loop only writes the upload to a pipe and reads 784 pixels back: no threads, no pickling (a
    ProcessPoolExecutor's helper threads cost more than they save; docs/performance.md, the photo
    path). Answers come back in order, so a FIFO matches them. Until the process has answered its
    first photo everything stays on the loop.

    If it dies (a decoder crash, the OOM killer, a kill -9), a new one starts and every photo it
    held goes to the new one: the one it was decoding (the FIFO's head) with a strike against
    it, the others untouched. A photo with two strikes has crashed two decoders: it gets a 422
    saying so. A photo the new process does not answer within RETRY_WAIT_S gets a 503.
    """

    COMMAND = (sys.executable, "-m", "app.serving.photo_worker")  # then MAX_PIXELS
    RETRY_WAIT_S = 5.0
    RESTART_DELAY_S = 1.0  # after a process that died before its first answer

    def __init__(self, max_pixels: int, on_restart: Callable[[], None] | None = None) -> None:
        self.max_pixels = max_pixels
        self.on_restart = on_restart
        self.ready = False
        self.restarts = 0
        self.pending: collections.deque[_Upload] = collections.deque()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._probe = b""
        self._closing = False

    async def start(self, probe: bytes) -> None:
        """Start the process; it is ready once it has prepared `probe` (in the background)."""
        self._probe = probe
        self._proc = await asyncio.create_subprocess_exec(
            *self.COMMAND,
            str(self.max_pixels),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_answers(self._proc))
        warm = self._send(_Upload(probe, asyncio.get_running_loop().create_future()))

        def warmed(f: asyncio.Future[Prepared]) -> None:
            self.ready = not f.cancelled() and f.exception() is None

        warm.add_done_callback(warmed)

    def _send(self, upload: _Upload) -> asyncio.Future[Prepared]:
        """Queue the upload and write it to the process. A pipe found closed (the process has
        just died) is left to the restart, which sends everything still pending."""
        assert self._proc is not None and self._proc.stdin is not None
        self.pending.append(upload)
        stdin = self._proc.stdin
        if not stdin.is_closing():
            with contextlib.suppress(RuntimeError, ConnectionError):
                stdin.write(LENGTH.pack(len(upload.data)) + upload.data)
        return upload.future

    async def prepare(self, data: bytes) -> Prepared:
        """A small photo prepared in the process; an ImageError as on the loop."""
        return await self._send(_Upload(data, asyncio.get_running_loop().create_future()))

    async def _read_answers(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        answered = False
        try:
            while True:
                status, length = ANSWER.unpack(await proc.stdout.readexactly(ANSWER.size))
                payload = await proc.stdout.readexactly(length)
                answered = True
                future = self.pending.popleft().future
                if future.done():
                    continue
                if status == OK:
                    pixels = np.frombuffer(payload[: -TAIL.size], np.uint8).reshape(28, 28)
                    decode_s, preprocess_s, *box = TAIL.unpack(payload[-TAIL.size :])
                    future.set_result(Prepared(pixels, decode_s, preprocess_s, tuple(box)))
                else:
                    name, _, message = payload.decode().partition("\0")
                    future.set_exception(getattr(image_decode, name, ImageError)(message))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if self._closing:
            return
        await self._restart(await proc.wait(), answered)

    async def _restart(self, exit_code: int, answered: bool) -> None:
        """The process died: start another, and hand it what the dead one held."""
        log.error("a decoding process died (exit %s); starting a new one", exit_code)
        self.ready = False
        self.restarts += 1
        if self.on_restart is not None:
            self.on_restart()
        held, self.pending = list(self.pending), collections.deque()
        if held:
            held[0].strikes += 1  # the photo it was decoding
        retry = []
        for upload in held:
            if upload.future.done():
                continue
            if upload.strikes >= 2:
                upload.future.set_exception(
                    CorruptImageError(
                        "the image could not be decoded: it crashed the decoder twice"
                    )
                )
            else:
                retry.append(upload)
                asyncio.get_running_loop().call_later(self.RETRY_WAIT_S, _give_up, upload.future)
        if not answered:
            await asyncio.sleep(self.RESTART_DELAY_S)  # a start that fails: no busy loop
        try:
            await self.start(self._probe)
        except OSError as exc:
            log.error("a decoding process could not start: %s", exc)
            for upload in retry:
                upload.future.set_exception(DecoderUnavailableError(str(exc)))
            return
        for upload in retry:
            self._send(upload)

    async def close(self) -> None:
        """Close the process's input; it ends after the photos it holds."""
        self._closing, self.ready = True, False
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 5)
            if self._proc.returncode is None:
                self._proc.kill()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


def _give_up(future: asyncio.Future[Prepared]) -> None:
    """A retried photo still unanswered: 503, not a wait without end."""
    if not future.done():
        future.set_exception(
            DecoderUnavailableError(
                "no decoding process is available (one is restarting); retry shortly"
            )
        )


class DecodeBudget:
    """Bytes of decoded pixels the decode threads may hold at once; decodes wait their turn.

    A 28x28 classifier needs no 40-megapixel bitmap, but a PNG cannot be decoded at a reduced
    scale: eight concurrent 40 MP PNGs (small files, under the pixel limit) took the process
    from 0.9 to 1.5 GB. Under a budget they decode one after the other instead. First come,
    first served; an image larger than the whole budget runs alone. Event loop only.
    """

    def __init__(self, limit_bytes: int) -> None:
        self.limit = limit_bytes
        self.held = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def take(self, n: int) -> int:
        """Wait until n bytes fit; return what was taken (at most the budget), for give_back."""
        n = min(n, self.limit)
        if not self._waiting and self.held + n <= self.limit:
            self.held += n
            return n
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append((n, turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.give_back(n)  # granted just as its request gave up
            raise
        return n

    def give_back(self, n: int) -> None:
        self.held -= n
        while self._waiting:
            size, turn = self._waiting[0]
            if turn.cancelled():
                self._waiting.popleft()
            elif self.held + size <= self.limit:
                self._waiting.popleft()
                self.held += size
                turn.set_result(None)
            else:
                break


class Decoder:
    """Turns uploaded bytes into images, on `threads` decoding threads (and one at a lower
    priority for large images), within a memory budget."""

    def __init__(
        self,
        threads: int,
        max_pixels: int,
        budget_bytes: int,
        processes: int = 0,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        self.max_pixels = max_pixels
        self.processes = [DecodeProcess(max_pixels, on_restart) for _ in range(processes)]
        self.budget = DecodeBudget(budget_bytes)
        self._probe = b""  # the JPEG of the warm-up, a decoding process's first photo
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="decode")
        self._large = ThreadPoolExecutor(
            1, thread_name_prefix="decode-large", initializer=_lower_thread_priority
        )

    async def prepare(self, data: bytes, busy: bool = False) -> Prepared:
        """Upload bytes to a (28, 28) uint8 image; an ImageError says what was wrong. `busy`:
        other requests are in flight, so a small photo goes to a decoding process when there
        is one."""
        start = time.perf_counter()
        img = open_image(data, self.max_pixels)  # the header: bad uploads fail here, cheaply
        pixels = img.width * img.height
        if pixels <= INLINE_MAX_PIXELS:
            offload = busy and pixels > THUMBNAIL_MAX_PIXELS
            ready = [p for p in self.processes if p.ready] if offload else []
            if ready:
                img.close()
                return await min(ready, key=lambda p: len(p.pending)).prepare(data)
            return _decode_and_preprocess(img, start)
        loop = asyncio.get_running_loop()
        size = decoded_bytes(img)
        large = size >= LARGE_BYTES
        taken = await self.budget.take(size)
        job = (self._large if large else self._pool).submit(
            _decode_and_preprocess, img, start, large
        )

        def release(_: Future[Prepared]) -> None:
            # When the thread is done (or the job cancelled before it ran), not when the request
            # gives up: a timed-out request's decode still holds its memory until it ends.
            loop.call_soon_threadsafe(self.budget.give_back, taken)

        job.add_done_callback(release)
        return await asyncio.wrap_future(job)

    async def warm_up(self) -> None:
        """The first photo pays for Pillow's plugin loading and numpy's lazy set-up: pay it here."""
        loop = asyncio.get_running_loop()
        for fmt in ("PNG", "JPEG"):
            buf = io.BytesIO()
            Image.new("RGB", (2 * WORKING_SIZE, WORKING_SIZE), "white").save(buf, format=fmt)
            self._probe = buf.getvalue()
            await loop.run_in_executor(self._pool, prepare_photo, self._probe)

    async def start_processes(self) -> None:
        """Start the decoding processes; each takes photos once it has prepared a probe (in the
        background: until then the threads decode)."""
        for process in self.processes:
            await process.start(self._probe)

    async def close(self) -> None:
        """Finish the decodes under way, then end the threads and processes."""
        for process in self.processes:
            await process.close()
        self._pool.shutdown(wait=True)
        self._large.shutdown(wait=True)
