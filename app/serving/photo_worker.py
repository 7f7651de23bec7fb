"""A decoding process: uploads in on stdin, Fashion-MNIST-like 28x28 images out on stdout.

    python -m app.serving.photo_worker MAX_PIXELS

Started by app.serving.decode.DecodeProcess. Frames both ways: a request is a 4-byte little-endian
length and the upload's bytes; an answer is a status byte, a 4-byte length and the payload: the
784 pixels, then the decode and preprocess seconds and the view box (model.images.silhouette.Box)
as six doubles, or, for an upload that is no usable image, the ImageError's class name, a NUL and
its message. Imports no torch (and none of FastAPI): numpy, Pillow and OpenCV only.
"""

from __future__ import annotations

import signal
import struct
import sys
import time
from typing import BinaryIO

from model.images import decode, silhouette

LENGTH = struct.Struct("<I")
ANSWER = struct.Struct("<BI")  # status, payload length
TAIL = struct.Struct("<dddddd")  # decode seconds, preprocess seconds, the Box
OK, IMAGE_ERROR = 0, 1


def answer(data: bytes, max_pixels: int) -> bytes:
    """The answer frame for one upload."""
    start = time.perf_counter()
    try:
        pixels, decode_s, preprocess_s, box = silhouette.prepare_timed(
            decode.open_image(data, max_pixels), start
        )
    except decode.ImageError as exc:
        payload = f"{type(exc).__name__}\0{exc}".encode()
        return ANSWER.pack(IMAGE_ERROR, len(payload)) + payload
    payload = pixels.tobytes() + TAIL.pack(decode_s, preprocess_s, *box)
    return ANSWER.pack(OK, len(payload)) + payload


def _read(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data and len(data) == n else None


def serve(max_pixels: int, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer frames until stdin ends (the service closed it, or died)."""
    while (head := _read(stdin, LENGTH.size)) is not None:
        (length,) = LENGTH.unpack(head)
        data = _read(stdin, length) if length else b""
        if data is None:
            return
        stdout.write(answer(data, max_pixels))
        stdout.flush()


def main() -> None:
    # The service decides when this process ends (it closes stdin), not a Ctrl-C or a SIGTERM
    # sent to the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(int(sys.argv[1]), sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
