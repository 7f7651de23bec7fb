"""The error an answer carries (a status and one sentence), and how client input is quoted in it.

Raised anywhere on a request's way (pipeline, protocol, routes); app.http.handlers writes it.
"""

from __future__ import annotations

ECHO_MAX = 80
CLIENT_CLOSED = 499


def echo(text: str | None, limit: int = ECHO_MAX) -> str:
    """Client input quoted back in an error detail: printable, and cut after `limit` characters
    (a 40,000-character header must not come back whole)."""
    text = "".join(c if c.isprintable() else "?" for c in (text or "")[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "..."


class ApiError(Exception):
    """An error answer: status, one-sentence detail, optional headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
