from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.http.factory import create_app
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


def test_hand_written_fragments_match_what_the_routes_do(
    tiny_checkpoint: Path, boot_png: bytes
) -> None:
    """/predict and /v2 declare their bodies and some parameters by hand (they read the request
    themselves, for speed): what the document says is what the routes accept and refuse."""
    with TestClient(create_app(make_settings(tiny_checkpoint, max_batch_images=3))) as c:
        doc = c.get("/openapi.json").json()
        predict = doc["paths"]["/predict"]["post"]
        content = predict["requestBody"]["content"]
        field = content["multipart/form-data"]["schema"]["required"][0]
        assert c.post("/predict", files={field: ("a.png", boot_png)}).status_code == 200
        assert "image/*" in content
        raw = c.post("/predict", content=boot_png, headers={"content-type": "image/png"})
        assert raw.status_code == 200
        top_k = _param(predict, "top_k")
        lo, hi = top_k["minimum"], top_k["maximum"]
        for value, status in [(lo, 200), (hi, 200), (lo - 1, 422), (hi + 1, 422)]:
            r = c.post(f"/predict?top_k={value}", files={field: ("a.png", boot_png)})
            assert r.status_code == status, value
        batch = doc["paths"]["/predict/batch"]["post"]["requestBody"]["content"]
        schema = batch["multipart/form-data"]["schema"]
        (name,) = schema["required"]
        most = schema["properties"][name]["maxItems"]
        for count, status in [(most, 200), (most + 1, 422)]:
            r = c.post("/predict/batch", files=[(name, ("a.png", boot_png))] * count)
            assert r.status_code == status, count
        infer_path = "/v2/models/{model_name}/infer"
        infer = doc["paths"][infer_path]["post"]
        (param,) = infer["parameters"]
        served = param["schema"]["default"]
        assert param["schema"]["enum"] == [served]
        example = infer["requestBody"]["content"]["application/json"]["example"]
        r = c.post(infer_path.replace("{model_name}", served), json=example)
        assert r.status_code == 200 and [o["name"] for o in r.json()["outputs"]] == [
            o["name"] for o in example["outputs"]
        ]
        assert c.post(infer_path.replace("{model_name}", "other"), json=example).status_code == 404


def test_explain_is_declared_off_by_default_with_its_fields_and_their_examples(
    tiny_checkpoint: Path, boot_png: bytes
) -> None:
    fields = ("network_input", "network_input_box", "saliency")
    with TestClient(create_app(make_settings(tiny_checkpoint))) as c:
        doc = c.get("/openapi.json").json()
        for path, field in [("/predict", "image"), ("/predict/batch", "images")]:
            explain = _param(doc["paths"][path]["post"], "explain")
            assert explain["type"] == "boolean" and explain["default"] is False
            files = [(field, ("a.png", boot_png))]
            off = c.post(path, files=files).json()
            on = c.post(f"{path}?explain=true", files=files).json()
            off, on = (off["results"][0], on["results"][0]) if "results" in on else (off, on)
            assert not set(fields) & set(off) and set(fields) <= set(on)
        schema = doc["components"]["schemas"]["PredictResponse"]["properties"]
        for name in fields:
            assert schema[name]["examples"], name
        saliency = schema["saliency"]["examples"][0]
        assert len(saliency) == 28 and all(len(row) == 28 for row in saliency)
