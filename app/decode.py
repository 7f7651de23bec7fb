"""Decoding uploads: bytes to the (28, 28) uint8 image the network's input is made from.

The first stage of a request, apart from batching and inference (the engine's): the header is
read on the event loop, where a bad upload fails cheaply; the pixels are decoded and preprocessed
on a thread pool, so one big photo never stalls the other requests.
"""

from __future__ import annotations

import asyncio
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image
from torch import Tensor

from model.preprocess import (
    WORKING_SIZE,
    load_image,
    open_image,
    photo_to_fashion_mnist,
    prepare_photo,
)

# Decoding a thumbnail takes about 0.1 ms, less than a hop to a thread and back; larger images
# are decoded off the event loop.
INLINE_MAX_PIXELS = 64 * 64


@dataclass(frozen=True)
class Prepared:
    """One upload as a (28, 28) uint8 image, and the seconds each step took."""

    image: Tensor
    decode_s: float
    preprocess_s: float


def _decode_and_preprocess(img: Image.Image, start: float) -> Prepared:
    img = load_image(img)
    decoded = time.perf_counter()
    x = photo_to_fashion_mnist(img)
    return Prepared(x, decoded - start, time.perf_counter() - decoded)


class Decoder:
    """Turns uploaded bytes into images, on `threads` decoding threads."""

    def __init__(self, threads: int, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="decode")

    async def prepare(self, data: bytes) -> Prepared:
        """Upload bytes to a (28, 28) uint8 image; an ImageError says what was wrong."""
        start = time.perf_counter()
        img = open_image(data, self.max_pixels)  # the header: bad uploads fail here, cheaply
        if img.width * img.height <= INLINE_MAX_PIXELS:
            return _decode_and_preprocess(img, start)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _decode_and_preprocess, img, start)

    async def warm_up(self) -> None:
        """The first photo pays for Pillow's plugin loading and numpy's lazy set-up: pay it here."""
        loop = asyncio.get_running_loop()
        for fmt in ("PNG", "JPEG"):
            buf = io.BytesIO()
            Image.new("RGB", (2 * WORKING_SIZE, WORKING_SIZE), "white").save(buf, format=fmt)
            await loop.run_in_executor(self._pool, prepare_photo, buf.getvalue())

    def close(self) -> None:
        """Finish the decodes under way, then end the threads."""
        self._pool.shutdown(wait=True)
