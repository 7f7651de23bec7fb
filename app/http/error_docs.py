"""The error answers as the OpenAPI document lists them: one table of what each status means,
and the Open Inference Protocol's wording where its requests differ."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

ERRORS = {
    400: "malformed multipart body",
    401: "API key missing or wrong (only when API_KEY is set)",
    404: "no such model or version (the message lists the ready ones)",
    408: "the body did not arrive within BODY_TIMEOUT_S",
    413: "upload or image dimensions over the limit",
    415: "not an image, or not a format the service reads",
    409: "the call would leave no model ready, or MODEL_CONTROL does not allow it",
    422: "missing field, corrupt image, or bad parameter",
    503: "queue full or model not loaded (see Retry-After)",
    504: "no result within the request timeout",
}
V2_WORDING = {
    400: "malformed request: JSON, shape, datatype or binary data (the message says which)",
    413: "body or image dimensions over the limit",
    415: "an element of 'image' is not an image the service reads",
    422: "an element of 'image' is a corrupt image",
}


def responses(
    model: type[BaseModel], *codes: int, **wording: str
) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route for these statuses; `wording` replaces a status's text
    (keyed 's422' and so on)."""
    return {
        code: {"model": model, "description": wording.get(f"s{code}", ERRORS[code])}
        for code in codes
    }


def v2_responses(model: type[BaseModel], *codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses` in the Open Inference Protocol's wording."""
    return responses(model, *codes, **{f"s{c}": t for c, t in V2_WORDING.items() if c in codes})
