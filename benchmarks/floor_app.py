"""The floor of the overload benchmark: an ASGI app that answers 503 to everything at once.

uvicorn --app-dir benchmarks floor_app:app
"""

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"detail":"busy"}'})
