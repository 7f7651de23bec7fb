import pytest

from app.multipart import MultipartError, Part, parse_multipart

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
    b"Content-Type: image/png\r\n\r\n\x89PNG\r\n--AbC"
)
FIELD = b'Content-Disposition: form-data; name="note"\r\n\r\nhello'


def test_parts_come_back_in_order_with_names_filenames_and_exact_bytes() -> None:
    parts = parse_multipart(_body(FILE, FIELD, preamble=b"ignored\r\n", epilogue=b"\r\nx"), CT, 8)
    # The file's bytes end in "\r\n--AbC": only the full "\r\n--AbC-123" delimiter ends a part.
    assert parts == [Part("image", "a b.png", b"\x89PNG\r\n--AbC"), Part("note", None, b"hello")]


def test_the_boundary_may_be_quoted() -> None:
    assert len(parse_multipart(_body(FIELD), 'multipart/form-data; boundary="AbC-123"', 8)) == 1


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (_body(FIELD), "multipart/form-data", "no boundary"),
        (b"no delimiter here", CT, "no boundary line"),
        (b"--AbC-123\r\n" + FIELD, CT, "closing boundary"),
        (b"--AbC-123\r\nContent-Disposition: form-data", CT, "headers never end"),
        (_body(b"Content-Type: text/plain\r\n\r\nx"), CT, "no Content-Disposition name"),
        (b"--AbC-123junk\r\n" + FIELD + b"\r\n--AbC-123--", CT, "CRLF"),
        (_body(FIELD, FIELD, FIELD), CT, "more than 2 parts"),
    ],
)
def test_malformed_bodies_raise_with_a_reason(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(MultipartError, match=message):
        parse_multipart(body, content_type, 2)
