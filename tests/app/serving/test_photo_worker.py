"""The decoding process's program: frames in, frames out, the same pixels as the loop's."""

from __future__ import annotations

import io
import struct

import numpy as np

from app.serving.photo_worker import ANSWER, IMAGE_ERROR, LENGTH, OK, TAIL, answer, serve
from model.images.silhouette import prepare_photo
from tests.helpers import object_photo, png_bytes


def _frames(*uploads: bytes) -> bytes:
    return b"".join(LENGTH.pack(len(u)) + u for u in uploads)


def _answers(out: bytes) -> list[tuple[int, bytes]]:
    got, offset = [], 0
    while offset < len(out):
        status, length = ANSWER.unpack_from(out, offset)
        offset += ANSWER.size
        got.append((status, out[offset : offset + length]))
        offset += length
    return got


def test_an_image_comes_back_as_the_loops_pixels_with_timings_and_box() -> None:
    photo = png_bytes(object_photo(True))
    status, payload = _answers(answer(photo, 10**7))[0]
    assert status == OK and len(payload) == 784 + TAIL.size
    pixels = np.frombuffer(payload[:784], dtype=np.uint8).reshape(28, 28)
    assert np.array_equal(pixels, prepare_photo(photo))
    decode_s, preprocess_s, *box = TAIL.unpack(payload[784:])
    assert decode_s > 0 and preprocess_s > 0 and len(box) == 4


def test_a_bad_upload_names_its_error_type() -> None:
    status, payload = _answers(answer(b"not an image", 10**7))[0]
    name, message = payload.decode().split("\0")
    assert status == IMAGE_ERROR and name == "UnsupportedImageError" and "not an image" in message


def test_serve_answers_every_frame_in_order_and_stops_at_a_cut_frame() -> None:
    photo = png_bytes(object_photo(False))
    stdin = io.BytesIO(_frames(photo, b"", photo) + struct.pack("<I", 100) + b"cut")
    stdout = io.BytesIO()
    serve(10**7, stdin, stdout)
    statuses = [s for s, _ in _answers(stdout.getvalue())]
    assert statuses == [OK, IMAGE_ERROR, OK]  # the empty upload is an error; the cut frame ends
