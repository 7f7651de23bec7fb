from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.protocol.multipart import MultipartError, Part, parse_multipart

CT = "multipart/form-data; boundary=AbC-123"


def _body(*parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    return (
        preamble
        + b"".join(b"--AbC-123\r\n" + p + b"\r\n" for p in parts)
        + b"--AbC-123--"
        + epilogue
    )


FILE = (
    b'Content-Disposition: form-data; name="image"; filename="a b.png"\r\n'
    b"Content-Type: image/png\r\n\r\n\x89PNG\r\n--AbC\r\n--AbC-123X"
)
FIELD = b'Content-Disposition: form-data; name="note"\r\n\r\nhello'


def test_parts_come_back_in_order_with_names_filenames_and_exact_bytes() -> None:
    parts = parse_multipart(_body(FILE, FIELD, epilogue=b"\r\nx"), CT, 8)
    # The file's bytes hold "\r\n--AbC" and "\r\n--AbC-123X": a delimiter ends a part only when
    # CRLF or "--" follows it.
    assert parts == [
        Part("image", "a b.png", b"\x89PNG\r\n--AbC\r\n--AbC-123X"),
        Part("note", None, b"hello"),
    ]


def test_the_boundary_may_be_quoted() -> None:
    assert len(parse_multipart(_body(FIELD), 'multipart/form-data; boundary="AbC-123"', 8)) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (_body(FIELD), "multipart/form-data", "no boundary"),
        (_body(FIELD), "multipart/form-data; boundary=" + "b" * 300, "longer than 70"),
        (b"no delimiter here", CT, "does not start with its boundary"),
        (_body(FIELD, preamble=b"preamble\r\n"), CT, "does not start with its boundary"),
        (b"--AbC-123\r\n" + FIELD, CT, "closing boundary"),
        (b"--AbC-123\r\nContent-Disposition: form-data", CT, "headers never end"),
        (_body(b"Content-Type: text/plain\r\n\r\nx"), CT, "no Content-Disposition name"),
        (_body(b"X-Big: " + b"a" * 1_000_000 + b"\r\n" + FIELD), CT, "oversized header"),
        (_body(b"X: 1\r\n" * 8 + FIELD), CT, "more than 8 header lines"),
        (b"--AbC-123junk\r\n" + FIELD + b"\r\n--AbC-123--", CT, "CRLF"),
        (b"--AbC-123\r\n" + FIELD + b"\r\n--AbC-123 \r\n--AbC-123--", CT, "CRLF"),
        (_body(FIELD, FIELD, FIELD), CT, "more than 2 parts"),
    ],
)
def test_malformed_bodies_raise_with_a_reason(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        parse_multipart(body, content_type, 2)


# -- differential: this parser against python-multipart -------------------------------------------


def library_parts(body: bytes, boundary: bytes) -> list[tuple[list[tuple[bytes, bytes]], bytes]]:
    """python-multipart's reading of a body: each part's headers and data. Raises when it
    refuses the body (an error, or no closing boundary)."""
    parts: list[tuple[list[tuple[bytes, bytes]], bytes]] = []
    state: dict[str, Any] = {"ended": False}

    def part_begin() -> None:
        state.update(headers=[], field=b"", value=b"", data=bytearray())

    def header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def header_end() -> None:
        state["headers"].append((state["field"], state["value"]))
        state.update(field=b"", value=b"")

    def part_data(data: bytes, start: int, end: int) -> None:
        state["data"] += data[start:end]

    def part_end() -> None:
        parts.append((state["headers"], bytes(state["data"])))

    def end() -> None:
        state["ended"] = True

    callbacks = {
        "on_part_begin": part_begin, "on_header_field": header_field,
        "on_header_value": header_value, "on_header_end": header_end,
        "on_part_data": part_data, "on_part_end": part_end, "on_end": end,
    }  # fmt: skip
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    parser.write(body)
    parser.finalize()
    if not state["ended"]:
        raise MultipartParseError("no closing boundary")
    return parts


def _as_library_would(ours: list[Part]) -> list[tuple[str, str | None, bytes]]:
    return [(p.name, p.filename, p.data) for p in ours]


def _library_named(parts: list[tuple[list[tuple[bytes, bytes]], bytes]]) -> list[Any]:
    named = []
    for headers, data in parts:
        dispositions = [v for f, v in headers if f.lower() == b"content-disposition"]
        assert len(dispositions) == 1, headers
        _, params = parse_options_header(dispositions[0])
        name, filename = params[b"name"], params.get(b"filename")
        named.append((name, filename, data))
    return named


def _decoded(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")


KEYS = [b"content-disposition", b"CONTENT-DISPOSITION", b"Content-Disposition ", b"CD"]
# Bytes that matter to a multipart grammar, to build bodies near its edges.
SPECIAL = [b"\r\n", b"\r", b"\n", b"--", b"-", b" ", b"\t", b":", b";", b'"', b"=", b"\x00"]


def _often(draw: st.DrawFn, tenths: int) -> bool:
    return draw(st.integers(0, 9)) < tenths


@st.composite
def _headers(draw: st.DrawFn, chunk: st.SearchStrategy[bytes]) -> list[bytes]:
    """A part's header lines: usually a Content-Disposition, sometimes more or odd lines."""
    headers = []
    if _often(draw, 9):
        name = draw(st.text(max_size=8)).encode(errors="replace")
        value = b'form-data; name="' + name + b'"'
        if draw(st.booleans()):
            value += b'; filename="' + draw(st.text(max_size=8)).encode(errors="replace") + b'"'
        key = b"Content-Disposition" if _often(draw, 7) else draw(st.sampled_from(KEYS))
        headers.append(key + b":" + draw(st.sampled_from([b" ", b"", b"  ", b"\t"])) + value)
    for _ in range(draw(st.integers(0, 2))):
        if _often(draw, 8):
            headers.append(b"Content-Type: " + draw(st.sampled_from([b"image/png", b"a\tb "])))
        else:
            headers.append(b"".join(draw(st.lists(chunk, max_size=4))))
    if _often(draw, 1):
        headers.append(b"X-Long: " + b"v" * draw(st.sampled_from([4000, 4300, 10_000])))
    if _often(draw, 1):
        headers += [b"X-N: 1"] * draw(st.integers(6, 9))
    return draw(st.permutations(headers))


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """A content type and a body: parts built near the edges of the grammar (delimiters and
    their pieces inside data, odd headers, padding, preambles, epilogues), then, three times
    in ten, damaged by a few random edits."""
    boundary = draw(
        st.one_of(
            st.sampled_from(["AbC-123", "x", "-", "--x", "a" * 70, "b" * 71, "c" * 300]),
            st.text("abcXYZ019'()+_,-./=?", min_size=1, max_size=80),
        )
    )
    delim = b"--" + boundary.encode()
    pieces = [*SPECIAL, delim, b"\r\n" + delim, b"\r\n" + delim + b"--", delim[:-1]]
    chunk = st.one_of(st.binary(max_size=12), st.sampled_from(pieces))
    body = b"" if _often(draw, 9) else draw(st.sampled_from([b"\r\n", b"pre\r\n", b" "]))
    for _ in range(draw(st.integers(0, 4))):
        data = b"".join(draw(st.lists(chunk, max_size=10)))
        after = b"\r\n" if _often(draw, 9) else draw(st.sampled_from([b" \r\n", b"\t\r\n", b"x"]))
        body += delim + after + b"\r\n".join(draw(_headers(chunk))) + b"\r\n\r\n" + data + b"\r\n"
    ending = [b"--", b"--\r\n", b"--epilogue\r\n--", b"", b"\r\n", b" ", b"-"]
    body += delim + (b"--" if _often(draw, 7) else draw(st.sampled_from(ending)))
    if _often(draw, 3):
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(body)))
            op = draw(st.sampled_from(["insert", "delete", "cut"]))
            if op == "insert":
                body = body[:at] + draw(chunk) + body[at:]
            elif op == "delete":
                body = body[:at] + body[at + draw(st.integers(1, 4)) :]
            else:
                body = body[:at]
    quoted = draw(st.booleans()) or not boundary.isalnum()
    value = '"' + boundary + '"' if quoted else boundary
    return "multipart/form-data; boundary=" + value, body


def _compare(case: tuple[str, bytes]) -> str:
    """Parse one body with both parsers: which outcome it had (asserting they agree)."""
    content_type, body = case
    _, params = parse_options_header(content_type)
    try:
        ours = parse_multipart(body, content_type, max_parts=100)
    except MultipartError:
        ours = None
    try:
        theirs = library_parts(body, params[b"boundary"])
    except (MultipartParseError, FormParserError):
        theirs = None
    if ours is None:
        return "ours refuses" if theirs is not None else "both refuse"
    assert theirs is not None, f"accepted a body python-multipart refuses: {body!r}"
    library = [(_decoded(n), _decoded(f), d) for n, f, d in _library_named(theirs)]
    assert _as_library_would(ours) == library, body
    return "both accept"


@pytest.mark.slow  # 10,000+ generated bodies, two minutes
def test_accepts_nothing_python_multipart_refuses_and_agrees_on_every_part() -> None:
    seen: Counter[str] = Counter()

    @settings(
        max_examples=10_000,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(bodies())
    def differential(case: tuple[str, bytes]) -> None:
        seen[_compare(case)] += 1

    differential()
    # The generated bodies reached all three outcomes, so neither the accepting nor the
    # refusing side went untested.
    assert seen.total() >= 10_000, seen
    assert min(seen["both accept"], seen["ours refuses"], seen["both refuse"]) >= 100, seen
