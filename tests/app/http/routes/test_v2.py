"""The Open Inference Protocol routes, driven by clients nobody here wrote: tritonclient.http
and kserve's InferenceRESTClient, against a real server process on the shipped checkpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import (
    InferenceServerException,
    serialize_byte_tensor,
)

from app.http.factory import create_app
from app.protocol.oip import HEADER_LENGTH, OipError, encode_infer, parse_infer
from model.data.fashion_mnist import CLASS_NAMES, Split
from tests.helpers import make_settings, png_bytes

MODEL = "d2l-resnet18"
_JPEG = png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8), "JPEG")
TRUNCATED_JPEG = _JPEG[: len(_JPEG) // 2]


def _predict(url: str, png: bytes) -> dict[str, object]:
    """/predict's answer with all ten classes' probabilities."""
    r = httpx.post(f"{url}/predict?top_k=10", files={"image": ("x.png", png)}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _text(element: bytes | str) -> str:
    """A BYTES element as tritonclient returns it: bytes from binary data, str from JSON."""
    return element.decode() if isinstance(element, bytes) else element


def _probs(answer: dict) -> list[float]:
    return [t["probability"] for t in sorted(answer["top_k"], key=lambda t: t["class_id"])]


@pytest.fixture
def triton_client(shipped_server: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(shipped_server.removeprefix("http://"))


def test_tritonclient_health_and_metadata(triton_client: triton.InferenceServerClient) -> None:
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready(MODEL)
    assert not triton_client.is_model_ready("another-model")
    meta = triton_client.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and len(meta["versions"]) == 1
    assert meta["inputs"] == [
        {"name": "image", "datatype": "BYTES", "shape": [-1]},
        {"name": "pixels", "datatype": "UINT8", "shape": [-1, 28, 28]},
    ]
    assert meta["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]
    assert triton_client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    version = meta["versions"][0]
    assert triton_client.get_model_metadata(MODEL, model_version=version)["name"] == MODEL
    assert version == "1"  # its folder in the model repository (one checkpoint: 1)
    for asked, status, says in (("7", "404", "no ready version 7"), ("v0", "400", "not a version")):
        with pytest.raises(InferenceServerException, match=says) as err:
            triton_client.get_model_metadata(MODEL, model_version=asked)
        assert err.value.status() == status


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_image_input_matches_predict(
    triton_client: triton.InferenceServerClient,
    shipped_server: str,
    test_images: Split,
    binary: bool,
) -> None:
    pngs = [png_bytes(test_images.images[i].numpy()) for i in range(4)]
    # JSON carries a file as base64 text; binary tensor data carries its bytes.
    elements = pngs if binary else [base64.b64encode(p) for p in pngs]
    image = triton.InferInput("image", [len(pngs)], "BYTES")
    image.set_data_from_numpy(np.array(elements, dtype=object), binary_data=binary)
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "label")
    ]
    result = triton_client.infer(MODEL, [image], outputs=outputs)
    probs, labels = result.as_numpy("probabilities"), result.as_numpy("label")
    assert probs.shape == (4, 10) and probs.dtype == np.float32 and labels.shape == (4,)
    for png, p, label in zip(pngs, probs, labels, strict=True):
        expected = _predict(shipped_server, png)
        assert _text(label) == expected["label"]
        np.testing.assert_allclose(p, _probs(expected), atol=1e-6, rtol=0)
    # A trained model: the four images are not all one class.
    assert len({_text(label) for label in labels}) > 1


def test_tritonclient_pixels_input_selects_outputs(
    triton_client: triton.InferenceServerClient, shipped_server: str, test_images: Split
) -> None:
    pixels = test_images.images[:3].numpy()
    tensor = triton.InferInput("pixels", list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels)
    result = triton_client.infer(
        MODEL, [tensor], outputs=[triton.InferRequestedOutput("label", binary_data=False)]
    )
    assert result.as_numpy("probabilities") is None
    labels = [_text(x) for x in result.as_numpy("label")]
    assert labels == [_predict(shipped_server, png_bytes(p))["label"] for p in pixels]


@pytest.mark.parametrize(
    ("name", "datatype", "data", "status", "message"),
    [
        ("image", "BYTES", [b"not an image"], "415", "element 0 of input 'image'"),
        ("image", "BYTES", [TRUNCATED_JPEG], "422", "element 0 of input 'image'"),
        ("pixels", "FP32", np.zeros((1, 28, 28), np.float32), "400", "takes datatype UINT8"),
        ("pixels", "UINT8", np.zeros((1, 28, 27), np.uint8), "400", "takes shape [B, 28, 28]"),
        ("label", "BYTES", [b"x"], "400", "unknown input 'label'"),
    ],
    ids=["not-an-image", "corrupt-png", "wrong-datatype", "wrong-shape", "unknown-input"],
)
def test_tritonclient_bad_input_is_a_clear_4xx(
    triton_client: triton.InferenceServerClient,
    name: str,
    datatype: str,
    data: object,
    status: str,
    message: str,
) -> None:
    array = np.array(data, dtype=object) if datatype == "BYTES" else data
    tensor = triton.InferInput(name, list(array.shape), datatype)  # type: ignore[union-attr]
    tensor.set_data_from_numpy(array)
    with pytest.raises(InferenceServerException, match=re.escape(message)) as err:
        triton_client.infer(MODEL, [tensor])
    assert err.value.status() == status
    assert triton_client.is_server_ready()  # and it keeps serving


def test_kserve_rest_client(shipped_server: str, boot_png: bytes) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def run() -> tuple[bool, bool, object]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            image = InferInput("image", [1], "BYTES")
            image.set_data_from_numpy(np.array([boot_png], dtype=object), binary_data=True)
            request = InferRequest(MODEL, infer_inputs=[image], request_id="boot-1")
            answer = await client.infer(shipped_server, request, model_name=MODEL)
            live = await client.is_server_live(shipped_server)
            ready = await client.is_model_ready(shipped_server, MODEL)
            return live, ready, answer
        finally:
            await client.close()

    live, ready, answer = asyncio.run(run())
    assert live and ready
    assert answer.id == "boot-1"  # type: ignore[attr-defined]
    outputs = {o.name: o.as_numpy() for o in answer.outputs}  # type: ignore[attr-defined]
    expected = _predict(shipped_server, boot_png)
    assert _text(outputs["label"][0]) == expected["label"]
    np.testing.assert_allclose(outputs["probabilities"][0], _probs(expected), atol=1e-6, rtol=0)


def test_errors_under_v2_read_error_not_detail(client: TestClient) -> None:
    r = client.get("/v2/models/nope")
    assert r.status_code == 404 and r.json() == {
        "error": "no model 'nope' is ready; ready models: d2l-resnet18"
    }
    assert client.get("/v2/nothing/here").json() == {"error": "Not Found"}
    assert "detail" in client.get("/model/nothing").json()  # the service's own routes unchanged
    r = client.post(f"/v2/models/{MODEL}/infer", content=b"{")
    assert r.status_code == 400 and r.json()["error"].startswith("the inference request is not")


def test_model_name_setting_and_openapi_tag(tiny_checkpoint: Path) -> None:
    app = create_app(make_settings(tiny_checkpoint, model_name="fashion"))
    with TestClient(app) as c:
        assert c.get("/v2/models/fashion/ready").json() == {"name": "fashion", "ready": True}
        assert c.get(f"/v2/models/{MODEL}/ready").status_code == 404
        doc = c.get("/openapi.json").json()
    v2 = {p: ops for p, ops in doc["paths"].items() if p.startswith("/v2")}
    assert len(v2) == 12
    assert {t for ops in v2.values() for op in ops.values() for t in op["tags"]} == {
        "open inference protocol (v2)"
    }
    body = v2["/v2/models/{model_name}/infer"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/V2InferenceRequest"}
    assert "V2RequestInput" in doc["components"]["schemas"]
    # The one model's name is the path parameter's only value (Swagger UI offers it).
    params = v2["/v2/models/{model_name}/infer"]["post"]["parameters"]
    assert params[0]["name"] == "model_name" and params[0]["schema"]["enum"] == ["fashion"]


# --- the codec alone ---------------------------------------------------------------------------


def _binary_request(elements: list[bytes], outputs: list[dict] | None = None) -> tuple[bytes, str]:
    raw = serialize_byte_tensor(np.array(elements, dtype=object)).item()
    header: dict = {
        "inputs": [{"name": "image", "shape": [len(elements)], "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)}}]
    }  # fmt: skip
    if outputs is not None:
        header["outputs"] = outputs
    head = json.dumps(header).encode()
    return head + raw, str(len(head))


@pytest.mark.parametrize("sizes", [[0], [1, 0, 5], [300, 70_000], [7] * 64])
def test_bytes_elements_read_as_tritonclient_writes_them(sizes: list[int]) -> None:
    rng = np.random.default_rng(len(sizes))
    elements = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    body, length = _binary_request(elements)
    assert parse_infer(body, length, native=28).data == elements


def test_binary_outputs_decode_with_tritonclient() -> None:
    body, length = _binary_request([b"a", b"b"], outputs=[
        {"name": "label", "parameters": {"binary_data": True}},
        {"name": "probabilities", "parameters": {"binary_data": True}},
    ])  # fmt: skip
    request = parse_infer(body, length, native=28)
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=2).astype(np.float32)
    answer, json_length = encode_infer(request, MODEL, "1", probs.tolist(), CLASS_NAMES)
    assert json_length is not None
    result = triton.InferResult.from_response_body(answer, header_length=json_length)
    np.testing.assert_array_equal(result.as_numpy("probabilities"), probs)
    assert [_text(x) for x in result.as_numpy("label")] == [
        CLASS_NAMES[i] for i in probs.argmax(axis=1)
    ]


@pytest.mark.parametrize(
    ("header", "binary", "length", "message"),
    [
        ({"inputs": []}, b"", None, "exactly one input"),
        ({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES", "data": ["AA=="]}]},
         b"", None, "shape [2] but 'data' holds 1"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["%%"]}]},
         b"", None, "element 0 is not base64"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                      "parameters": {"binary_data_size": 9}}]},
         b"\x05\0\0\0abc", "auto", "binary_data_size is 9 but 7 bytes"),
        ({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                      "parameters": {"binary_data_size": 7}}]},
         b"\x05\0\0\0abc", "auto", "element 0 declares 5 bytes; 3 are left"),
        ({"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8",
                      "data": [256] * 784}]}, b"", None, "integers from 0 to 255"),
        ({"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8",
                      "data": [0] * 784}], "outputs": [{"name": "logits"}]},
         b"", None, "unknown output 'logits'"),
        ({"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8",
                      "data": [0] * 784}]}, b"x", "auto", "no input names them"),
        ({"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "UINT8"}]},
         b"", "999999", f"header {HEADER_LENGTH} must be"),
    ],
    ids=["no-input", "count", "not-base64", "size-mismatch", "short-element",
         "uint8-range", "unknown-output", "stray-bytes", "bad-header-length"],
)  # fmt: skip
def test_malformed_requests_say_what_was_expected(
    header: dict, binary: bytes, length: str | None, message: str
) -> None:
    head = json.dumps(header).encode()
    if length == "auto":
        length = str(len(head))
    with pytest.raises(OipError, match=re.escape(message)):
        parse_infer(head + binary, length, native=28)


def test_nested_json_pixels_equal_flat() -> None:
    pixels = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 256
    requests = [
        {"inputs": [{"name": "pixels", "shape": [2, 28, 28], "datatype": "UINT8", "data": d}]}
        for d in (pixels.tolist(), pixels.ravel().tolist())
    ]
    read = [parse_infer(json.dumps(r).encode(), None, 28).data for r in requests]
    np.testing.assert_array_equal(read[0], pixels)
    np.testing.assert_array_equal(read[1], pixels)
