"""multipart/form-data for a body already in memory: bytes.find instead of a streaming parser.

The service reads the whole (size-limited) body before parsing, so splitting it at the boundary
is enough, and faster than python-multipart's parser (docs/reliability.md, the multipart
parser).

It never accepts what python-multipart (the library Starlette uses) refuses, and where both
accept they find the same parts: tests/app/protocol/test_multipart.py checks that on 10,000+
generated bodies. Where the two grammars differ in an edge (a preamble, transport padding, a
delimiter followed by a lone CR or '-'), this parser refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from python_multipart.multipart import parse_options_header


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


class TooManyPartsError(MultipartError):
    """The body holds more parts than the caller allows."""


@dataclass(frozen=True)
class Part:
    """One form field: its name, its filename when it is a file, its bytes."""

    name: str
    filename: str | None
    data: bytes


# RFC 2046: a boundary is 1 to 70 characters.
MAX_BOUNDARY = 70
# Per part: python-multipart allows 8 header lines of 4,224 bytes; these are inside that.
MAX_HEADERS = 8
MAX_HEADER_LINE = 4096
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ ]*([^\r\n]*)")


def _text(value: bytes) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _disposition(headers: bytes) -> dict[bytes, bytes]:
    """The Content-Disposition parameters of one part's header block (CRLF-separated lines)."""
    lines = headers.split(b"\r\n")
    if len(lines) > MAX_HEADERS:
        raise MultipartError(f"a part has more than {MAX_HEADERS} header lines")
    found: dict[bytes, bytes] | None = None
    for line in lines:
        match = _HEADER_LINE.fullmatch(line)
        if match is None or len(line) > MAX_HEADER_LINE:
            raise MultipartError("a part has a malformed or oversized header line")
        if match.group(1).lower() == b"content-disposition":
            if found is not None:
                raise MultipartError("a part has two Content-Disposition headers")
            _, found = parse_options_header(match.group(2))
    if found is None or b"name" not in found:
        raise MultipartError("a part has no Content-Disposition name")
    return found


def _next_delimiter(body: bytes, delimiter: bytes, start: int) -> tuple[int, bool]:
    """Where the next part-ending CRLF+delimiter starts, and whether it is the closing one.

    A delimiter must be followed by CRLF (another part) or '--' (the end); followed by anything
    else it is data ("\\r\\n--<boundary>X" inside a file). A lone CR or '-', or padding, after
    it is refused: python-multipart reads those differently.
    """
    needle = b"\r\n" + delimiter
    pos = start
    while (pos := body.find(needle, pos)) >= 0:
        after = body[pos + len(needle) : pos + len(needle) + 2]
        if after == b"\r\n":
            return pos, False
        if after == b"--":
            return pos, True
        if after[:1] in (b"\r", b"-", b" ", b"\t"):
            raise MultipartError("a boundary line does not end with CRLF")
        pos += 1
    raise MultipartError("the body ends before its closing boundary")


def parse_multipart(body: bytes, content_type: str, max_parts: int) -> list[Part]:
    """Every part of a multipart/form-data body (RFC 7578), in order."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise MultipartError("the content type has no boundary")
    if len(boundary) > MAX_BOUNDARY:
        raise MultipartError(f"the boundary is longer than {MAX_BOUNDARY} characters")
    delimiter = b"--" + boundary
    if not body.startswith(delimiter):
        raise MultipartError("the body does not start with its boundary line")
    pos = len(delimiter)
    if body.startswith(b"--", pos):
        return []  # the close delimiter at once: no parts
    parts: list[Part] = []
    while True:
        if not body.startswith(b"\r\n", pos):
            raise MultipartError("a boundary line does not end with CRLF")
        headers_end = body.find(b"\r\n\r\n", pos)
        if headers_end < 0:
            raise MultipartError("a part's headers never end")
        end, last = _next_delimiter(body, delimiter, headers_end + 4)
        disposition = _disposition(body[pos + 2 : headers_end])
        if len(parts) == max_parts:
            raise TooManyPartsError(f"more than {max_parts} parts")
        filename = disposition.get(b"filename")
        parts.append(
            Part(
                _text(disposition[b"name"]),
                None if filename is None else _text(filename),
                body[headers_end + 4 : end],
            )
        )
        if last:
            return parts  # an epilogue may follow the close delimiter
        pos = end + 2 + len(delimiter)
