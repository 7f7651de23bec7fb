"""The Open Inference Protocol's REST inference body (KServe "v2", the protocol Triton speaks):
JSON tensors and Triton's binary tensor data extension, read into what the service classifies
and written back.

No FastAPI here: bytes in, bytes out, and an OipError (answered 400) for anything the protocol
or this model does not allow, saying what was expected.

The model takes one of two inputs and gives two outputs:
    image   BYTES [B]          encoded image files, any format /predict reads (JSON: base64)
    pixels  UINT8 [B, 28, 28]  Fashion-MNIST-like images, light object on black, as is
    probabilities  FP32  [B, C]  the calibrated class probabilities /predict reports
    label          BYTES [B]     the top class's name
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.errors import ApiError
from app.protocol.answers import Answer
from app.serving.pipeline import Job, Pipeline
from model.images.silhouette import NATIVE_SIZE

PREFIX = "/v2"  # where the protocol's routes live
HEADER_LENGTH = "Inference-Header-Content-Length"
IMAGE, PIXELS = "image", "pixels"
PROBABILITIES, LABEL = "probabilities", "label"
OUTPUTS = (PROBABILITIES, LABEL)
_LENGTH = struct.Struct("<I")  # a BYTES element's length prefix in binary tensor data


class OipError(ValueError):
    """A request the protocol or this model does not allow (answered 400)."""


@dataclass
class InferRequest:
    """One inference request, read: its images (encoded files or ready pixels) and what to
    answer with."""

    id: str | None
    # The `image` input's elements (encoded files), or the `pixels` input, (B, 28, 28) uint8.
    data: list[bytes] | np.ndarray
    # The outputs to return, in order, each with whether its data goes in binary.
    outputs: list[tuple[str, bool]] = field(default_factory=list)


def input_spec(native: int) -> list[dict[str, Any]]:
    """The inputs as model metadata lists them (-1: any batch size)."""
    return [
        {"name": IMAGE, "datatype": "BYTES", "shape": [-1]},
        {"name": PIXELS, "datatype": "UINT8", "shape": [-1, native, native]},
    ]


def output_spec(classes: int) -> list[dict[str, Any]]:
    """The outputs as model metadata lists them."""
    return [
        {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, classes]},
        {"name": LABEL, "datatype": "BYTES", "shape": [-1]},
    ]


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OipError(f"{what} must be a JSON object")
    return value


def _parameters(spec: dict[str, Any], what: str) -> dict[str, Any]:
    value = spec.get("parameters")
    return {} if value is None else _object(value, f"the parameters of {what}")


def _split(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary data after it."""
    cut = len(body)
    if header_length is not None:
        if not header_length.strip().isdecimal() or not 0 < int(header_length) <= len(body):
            raise OipError(
                f"header {HEADER_LENGTH} must be the JSON part's length in bytes, from 1 to the "
                f"body's {len(body):,}; got '{header_length[:20]}'"
            )
        cut = int(header_length)
    try:
        header = json.loads(body[:cut])
    except (ValueError, UnicodeDecodeError) as exc:
        raise OipError(f"the inference request is not valid JSON ({exc})") from None
    return _object(header, "the inference request"), body[cut:]


def _shape(spec: dict[str, Any], name: str) -> list[int]:
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise OipError(f"input '{name}': 'shape' must be a list of non-negative integers")
    return shape


def _expect(name: str, datatype: Any, shape: list[int], want: str, dims: list[int | None]) -> int:
    """Check the datatype and shape against what the input takes; return the batch size."""
    shown = "[" + ", ".join("B" if d is None else str(d) for d in dims) + "]"
    if datatype != want:
        raise OipError(f"input '{name}' takes datatype {want} {shown}; got {datatype!r}")
    if len(shape) != len(dims) or any(
        d is not None and s != d for s, d in zip(shape, dims, strict=True)
    ):
        raise OipError(f"input '{name}' takes shape {shown}; got {shape}")
    if shape[0] < 1:
        raise OipError(f"input '{name}' has no elements (shape {shape})")
    return shape[0]


def _flat(data: Any, name: str) -> list[Any]:
    """JSON tensor data, flattened: the protocol allows nested lists in row-major order."""
    if not isinstance(data, list):
        raise OipError(f"input '{name}': 'data' must be a list (or send binary tensor data)")
    if not any(isinstance(x, list) for x in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _elements(raw: bytes, count: int, name: str) -> list[bytes]:
    """A BYTES tensor's binary data: each element a 4-byte little-endian length, then its bytes."""
    out, offset = [], 0
    while offset < len(raw):
        if offset + _LENGTH.size > len(raw):
            raise OipError(f"input '{name}': binary data ends inside element {len(out)}'s length")
        (n,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + n > len(raw):
            raise OipError(
                f"input '{name}': element {len(out)} declares {n:,} bytes; "
                f"{len(raw) - offset:,} are left"
            )
        out.append(raw[offset : offset + n])
        offset += n
    if len(out) != count:
        raise OipError(f"input '{name}': shape [{count}] but the binary data holds {len(out)}")
    return out


def _base64(items: list[Any], count: int, name: str) -> list[bytes]:
    if len(items) != count:
        raise OipError(f"input '{name}': shape [{count}] but 'data' holds {len(items)} elements")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise OipError(f"input '{name}': element {i} must be a base64 string")
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise OipError(
                f"input '{name}': element {i} is not base64 (JSON carries an image file as "
                "base64; or send it raw with the binary tensor data extension)"
            ) from None
    return out


def _pixels(spec: dict[str, Any], raw: bytes | None, batch: int, native: int) -> np.ndarray:
    shape = (batch, native, native)
    size = math.prod(shape)
    if raw is not None:
        if len(raw) != size:
            raise OipError(
                f"input '{PIXELS}': shape {list(shape)} is {size:,} bytes; got {len(raw):,}"
            )
        return np.frombuffer(raw, dtype=np.uint8).reshape(shape)
    items = _flat(spec.get("data"), PIXELS)
    if len(items) != size:
        raise OipError(
            f"input '{PIXELS}': shape {list(shape)} needs {size:,} values; got {len(items):,}"
        )
    if not all(type(v) is int and 0 <= v <= 255 for v in items):
        raise OipError(f"input '{PIXELS}': UINT8 values are integers from 0 to 255")
    return np.asarray(items, dtype=np.uint8).reshape(shape)


def _outputs(header: dict[str, Any]) -> list[tuple[str, bool]]:
    """The outputs asked for, each with whether it is wanted as binary data."""
    binary = _parameters(header, "the request").get("binary_data_output", False) is True
    asked = header.get("outputs")
    if asked is None:
        return [(name, binary) for name in OUTPUTS]
    if not isinstance(asked, list) or not asked:
        raise OipError("'outputs' must be a non-empty list (or left out for all outputs)")
    out = []
    for spec in asked:
        name = _object(spec, "each requested output").get("name")
        if name not in OUTPUTS:
            raise OipError(f"unknown output {name!r}; the outputs are {', '.join(OUTPUTS)}")
        out.append((name, _parameters(spec, f"output '{name}'").get("binary_data", binary) is True))
    return out


def parse_infer(body: bytes, header_length: str | None, native: int) -> InferRequest:
    """Read an inference request body (HEADER_LENGTH is the binary extension's header)."""
    header, binary = _split(body, header_length)
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise OipError(
            f"an inference request has exactly one input: '{IMAGE}' (BYTES [B], image files) "
            f"or '{PIXELS}' (UINT8 [B, {native}, {native}])"
        )
    spec = _object(inputs[0], "the input")
    name = spec.get("name")
    if name not in (IMAGE, PIXELS):
        raise OipError(f"unknown input {name!r}; the inputs are '{IMAGE}' and '{PIXELS}'")
    shape = _shape(spec, name)
    if name == IMAGE:
        batch = _expect(name, spec.get("datatype"), shape, "BYTES", [None])
    else:
        batch = _expect(name, spec.get("datatype"), shape, "UINT8", [None, native, native])
    size = _parameters(spec, f"input '{name}'").get("binary_data_size")
    raw: bytes | None = None
    if size is not None:
        if type(size) is not int or size != len(binary):
            raise OipError(
                f"input '{name}': binary_data_size is {size!r} but {len(binary):,} bytes "
                "follow the JSON header"
            )
        raw = binary
    elif binary:
        raise OipError(f"{len(binary):,} bytes follow the JSON header but no input names them")
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise OipError("'id' must be a string")
    data: list[bytes] | np.ndarray
    if name == PIXELS:
        data = _pixels(spec, raw, batch, native)
    elif raw is not None:
        data = _elements(raw, batch, name)
    else:
        data = _base64(_flat(spec.get("data"), name), batch, name)
    return InferRequest(id=request_id, data=data, outputs=_outputs(header))


def encode_infer(
    request: InferRequest,
    model_name: str,
    model_version: str,
    probs: Sequence[Sequence[float]],
    class_names: Sequence[str],
) -> tuple[bytes, int | None]:
    """The inference response body, and its JSON part's length when binary data follows."""
    p = np.asarray(probs, dtype=np.float32)
    labels = [class_names[i] for i in p.argmax(axis=1).tolist()]
    outputs, chunks = [], []
    for name, binary in request.outputs:
        if name == PROBABILITIES:
            tensor: dict[str, Any] = {"name": name, "datatype": "FP32", "shape": list(p.shape)}
            raw = p.astype("<f4").tobytes() if binary else None
            data: list[Any] = p.ravel().tolist()
        else:
            tensor = {"name": name, "datatype": "BYTES", "shape": [len(labels)]}
            encoded = [label.encode() for label in labels]
            raw = b"".join(_LENGTH.pack(len(e)) + e for e in encoded) if binary else None
            data = labels
        if raw is None:
            tensor["data"] = data
        else:
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(tensor)
    answer: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request.id is not None:
        answer["id"] = request.id
    answer["outputs"] = outputs
    head = json.dumps(answer, separators=(",", ":")).encode()
    return (head + b"".join(chunks), len(head)) if chunks else (head, None)


async def infer(
    body: bytes, header_length: str | None, pipeline: Pipeline, name: str, start: float
) -> Answer:
    """An inference request's body read, its images or pixels run through the pipeline, and
    the response encoded (binary when an output asks for it)."""
    try:
        request = parse_infer(body, header_length, NATIVE_SIZE)
    except OipError as exc:
        raise ApiError(400, str(exc)) from None
    if isinstance(request.data, list):
        files = [(f"element {i} of input 'image'", d) for i, d in enumerate(request.data)]
        job = Job(files, named=True)
    else:
        job = Job(pixels=list(request.data))
    outcome = await pipeline.run(job)
    ckpt = pipeline.engine.ckpt
    encoded, json_length = encode_infer(
        request, name, str(pipeline.engine.served_as[1]), outcome.result.probs, ckpt.class_names
    )
    if json_length is None:
        return Answer(encoded, outcome.stages)
    return Answer(
        encoded, outcome.stages, "application/octet-stream", {HEADER_LENGTH: str(json_length)}
    )
