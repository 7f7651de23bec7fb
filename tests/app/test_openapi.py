from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.helpers import make_settings


def _document(checkpoint: Path, **settings: Any) -> dict[str, Any]:
    with TestClient(create_app(make_settings(checkpoint, **settings))) as c:
        return c.get("/openapi.json").json()


def _param(op: dict[str, Any], name: str) -> dict[str, Any]:
    schema = next(p for p in op["parameters"] if p["name"] == name)["schema"]
    return next((s for s in schema.get("anyOf", []) if s.get("type") == "integer"), schema)


def test_ranges_and_batch_limits_are_declared(tiny_checkpoint: Path) -> None:
    doc = _document(tiny_checkpoint, max_batch_images=7)
    for path in ("/predict", "/predict/batch"):
        top_k = _param(doc["paths"][path]["post"], "top_k")
        assert (top_k["minimum"], top_k["maximum"]) == (1, 10)
    summary = doc["paths"]["/model/summary"]["get"]
    assert (_param(summary, "input_size")["minimum"], _param(summary, "input_size")["maximum"]) == (
        16, 512,
    )  # fmt: skip
    assert (_param(summary, "depth")["minimum"], _param(summary, "depth")["maximum"]) == (1, 3)
    body = doc["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["multipart/form-data"]
    images = body["schema"]["properties"]["images"]
    assert (images["minItems"], images["maxItems"]) == (1, 7)


@pytest.mark.parametrize("key", [None, "k3y"])
def test_security_is_declared_only_when_a_key_is_set(
    tiny_checkpoint: Path, key: str | None
) -> None:
    doc = _document(tiny_checkpoint, api_key=key)
    guarded = [("/predict", "post"), ("/predict/batch", "post"), ("/model", "get"),
               ("/model/summary", "get")]  # fmt: skip
    for path, method in guarded:
        op = doc["paths"][path][method]
        assert ("security" in op) == (key is not None), path
        assert ("401" in op["responses"]) == (key is not None), path
    assert ("securitySchemes" in doc.get("components", {})) == (key is not None)
    for path in ("/health/live", "/health/ready", "/metrics"):
        assert "security" not in doc["paths"][path]["get"]
