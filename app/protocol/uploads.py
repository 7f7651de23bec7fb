"""The photos of a /predict or /predict/batch request: the files of a multipart field, or a raw
image/* body. The body's size limit depends on its framing, so the route asks before reading."""

from __future__ import annotations

from app.errors import ApiError, echo
from app.protocol.multipart import MultipartError, TooManyPartsError, parse_multipart
from app.serving.pipeline import too_many_images

# Framing a body may carry on top of its images: multipart headers, an inference request's JSON.
BODY_SLACK = 64 * 1024
Upload = tuple[str | None, bytes]  # (filename, bytes)


def is_multipart(content_type: str) -> bool:
    return content_type.lower().startswith("multipart/form-data")


def body_limit(content_type: str, field: str, limit: int) -> int:
    """The most bytes a body of this content type may hold: 415 for a type that cannot carry
    the field (a raw body only for the one `image`)."""
    lowered = content_type.lower()
    if is_multipart(lowered):
        return limit + BODY_SLACK
    if lowered.startswith(("image/", "application/octet-stream")) and field == "image":
        return limit
    raise ApiError(
        415,
        f"send the image as multipart field '{field}' (curl -F {field}=@photo.png)"
        + (" or as a raw body with an image/* content type" if field == "image" else "")
        + f"; got content type '{echo(lowered) or 'none'}'",
    )


def uploads(body: bytes, content_type: str, field: str, limit: int, most: int) -> list[Upload]:
    """(filename, bytes) of each file in multipart field `field` (each within `limit` bytes, at
    most `most` parts), or the raw body; `content_type` as sent (a boundary is case-sensitive)."""
    if not is_multipart(content_type):
        return [(None, body)]
    try:
        parts = parse_multipart(body, content_type, most)
    except TooManyPartsError:
        raise too_many_images(most) from None
    except MultipartError as exc:
        raise ApiError(400, f"malformed multipart body: {exc}") from exc
    files = [(p.filename, p.data) for p in parts if p.name == field]
    if not files:
        raise ApiError(422, f"multipart field '{field}' is missing (send it as -F {field}=@file)")
    for name, data in files:
        if len(data) > limit:
            raise ApiError(
                413, f"'{echo(name or field)}' is {len(data):,} bytes; the limit is {limit:,}"
            )
    return files
