import base64
import io
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.http.factory import create_app
from model.data.fashion_mnist import Split
from model.evaluate import predict as evaluate_predict
from model.images.silhouette import prepare_photo
from model.network.checkpoint import copy_checkpoint, load_checkpoint, update_metadata
from tests.helpers import bomb_png, make_settings, png_bytes, text_bomb_png


def test_predict_multipart_answers_every_field(client: TestClient, boot_png: bytes) -> None:
    r = client.post("/predict", files={"image": ("boot.png", boot_png, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "label", "class_id", "confidence", "none_of_the_classes", "garment_score", "top_k",
        "model", "device", "timing_ms",
    }  # fmt: skip
    assert len(body["top_k"]) == 3
    probs = [t["probability"] for t in body["top_k"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001
    assert body["top_k"][0] == {
        "label": body["label"], "class_id": body["class_id"], "probability": body["confidence"]
    }  # fmt: skip
    assert body["model"]["name"] == "d2l-resnet18" and len(body["model"]["checkpoint"]) == 12
    assert body["device"] == "cpu"
    timing = body["timing_ms"]
    assert set(timing) == {"decode", "preprocess", "queue", "inference", "total"}
    assert timing["total"] >= timing["inference"] > 0


def test_raw_image_body_is_accepted(client: TestClient, boot_png: bytes) -> None:
    multipart = client.post("/predict", files={"image": ("b.png", boot_png)}).json()
    raw = client.post("/predict", content=boot_png, headers={"content-type": "image/png"}).json()
    assert raw["top_k"] == multipart["top_k"]


@pytest.mark.parametrize("k", [1, 10])
def test_top_k(client: TestClient, boot_png: bytes, k: int) -> None:
    r = client.post(f"/predict?top_k={k}", files={"image": ("b.png", boot_png)})
    assert len(r.json()["top_k"]) == k
    if k == 10:
        assert sorted(t["class_id"] for t in r.json()["top_k"]) == list(range(10))


@pytest.mark.slow  # evaluates a trained run
def test_api_class_equals_evaluate_class(trained_run: Path, test_images: Split) -> None:
    ckpt_path = trained_run / "best.safetensors"
    ckpt = load_checkpoint(ckpt_path)
    expected = evaluate_predict(ckpt.model, test_images, ckpt.input_size, ckpt.mean, ckpt.std)
    assert len(set(expected.tolist())) > 1  # a trained model, not one constant answer
    with TestClient(create_app(make_settings(ckpt_path))) as c:
        got = [
            c.post("/predict", files={"image": ("x.png", png_bytes(img.numpy()))}).json()[
                "class_id"
            ]
            for img in test_images.images
        ]
    assert got == expected.tolist()


def _tiny_upload_client(checkpoint: Path) -> TestClient:
    return TestClient(create_app(make_settings(checkpoint, max_upload_mb=0.05)))


NOISE = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
RAW_PNG = {"content-type": "image/png"}
NO_BOUNDARY = {"content-type": "multipart/form-data"}


def _file(name: str, data: bytes, content_type: str = "image/png") -> dict[str, object]:
    return {"files": {"image": (name, data, content_type)}}


BAD_UPLOADS: dict[str, tuple[dict[str, object], int, str]] = {
    "text file": (_file("a.txt", b"just some text", "text/plain"), 415, "not an image"),
    "json body": ({"json": {"image": "x"}}, 415, "multipart field 'image'"),
    "no body": ({}, 415, "content type 'none'"),
    "urlencoded form": ({"data": {"image": "x"}}, 415, "x-www-form-urlencoded"),
    "empty file": (_file("e.png", b""), 422, "empty"),
    "missing field": ({"files": {"photo": ("a.png", b"x")}}, 422, "field 'image' is missing"),
    "form text only": ({"files": {"note": (None, "hi")}}, 422, "field 'image' is missing"),
    "truncated png": (_file("t.png", png_bytes(NOISE)[:900]), 422, "corrupt or truncated"),
    "decompression bomb": (_file("b.png", bomb_png(9_000, 9_000)), 413, "9000x9000"),
    "huge bomb": (_file("b.png", bomb_png(10**5, 10**5)), 413, "limit of 40,000,000"),
    "png metadata bomb": (_file("t.png", text_bomb_png()), 413, "metadata is over the limit"),
    "long content type": (
        {"content": b"x", "headers": {"content-type": "text/" + "x" * 40_000}},
        415,
        "...",
    ),
    "too large upload": (_file("big.png", b"\x89PNG" + b"0" * 200_000), 413, "limit"),
    "too large raw": ({"content": b"0" * 200_000, "headers": RAW_PNG}, 413, "limit"),
    "malformed multipart": ({"content": b"--x", "headers": NO_BOUNDARY}, 400, "malformed"),
    "two images": (
        {"files": [("image", ("a.png", b"1")), ("image", ("b.png", b"2"))]},
        422,
        "batch",
    ),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_input_is_a_clear_4xx_and_service_keeps_serving(
    tiny_checkpoint: Path, boot_png: bytes, case: str
) -> None:
    kwargs, status, message = BAD_UPLOADS[case]
    with _tiny_upload_client(tiny_checkpoint) as c:
        r = c.post("/predict", **kwargs)
        assert r.status_code == status, r.text
        assert r.headers["content-type"] == "application/json"
        assert set(r.json()) == {"detail"} and message in r.json()["detail"]
        assert len(r.json()["detail"]) < 300  # echoed input is cut short
        assert c.post("/predict", files={"image": ("b.png", boot_png)}).status_code == 200


@pytest.mark.parametrize("top_k", ["0", "11", "three"])
def test_bad_top_k_is_422(client: TestClient, boot_png: bytes, top_k: str) -> None:
    r = client.post(f"/predict?top_k={top_k}", files={"image": ("b.png", boot_png)})
    assert r.status_code == 422 and "top_k" in r.json()["detail"]


def test_batch_keeps_order_in_one_forward_pass(client: TestClient, test_images: Split) -> None:
    engine = client.app.state.services.engine  # type: ignore[attr-defined]
    files = [("images", (f"{i}.png", png_bytes(test_images.images[i].numpy()))) for i in range(5)]
    singles = [client.post("/predict", files={"image": f[1]}).json() for f in files]
    before = engine.forward_passes
    r = client.post("/predict/batch?top_k=2", files=files)
    assert r.status_code == 200, r.text
    assert engine.forward_passes == before + 1
    body = r.json()
    assert body["count"] == 5 and [x["filename"] for x in body["results"]] == [
        f"{i}.png" for i in range(5)
    ]
    for single, item in zip(singles, body["results"], strict=True):
        assert item["class_id"] == single["class_id"] and len(item["top_k"]) == 2
        assert item["confidence"] == pytest.approx(single["confidence"], abs=1e-4)


@pytest.mark.parametrize("count", [3, 4, 9])
def test_any_count_over_the_batch_limit_is_one_422(
    tiny_checkpoint: Path, boot_png: bytes, count: int
) -> None:
    """MAX_BATCH_IMAGES is enforced in one place: one status and one message for any excess,
    through multipart and the Open Inference Protocol alike."""
    encoded = base64.b64encode(boot_png).decode()
    v2 = {"inputs": [{"name": "image", "shape": [count], "datatype": "BYTES",
                      "data": [encoded] * count}]}  # fmt: skip
    with TestClient(create_app(make_settings(tiny_checkpoint, max_batch_images=2))) as c:
        answers = [
            c.post("/predict/batch", files=[("images", ("a.png", boot_png))] * count),
            c.post("/v2/models/d2l-resnet18/infer", json=v2),
        ]
        ok = c.post("/predict/batch", files=[("images", ("a.png", boot_png))] * 2)
    assert ok.status_code == 200
    assert [r.status_code for r in answers] == [422, 422]
    expected = "more than 2 images sent; the limit is 2"
    assert answers[0].json()["detail"] == answers[1].json()["error"] == expected


def test_batch_errors(tiny_checkpoint: Path, boot_png: bytes) -> None:
    with TestClient(create_app(make_settings(tiny_checkpoint, max_batch_images=2))) as c:
        bad = [("images", ("ok.png", boot_png)), ("images", ("bad.txt", b"text"))]
        r = c.post("/predict/batch", files=bad)
        assert r.status_code == 415 and r.json()["detail"].startswith("bad.txt:")
        r = c.post("/predict/batch", files={"image": ("b.png", boot_png)})
        assert r.status_code == 422 and "'images'" in r.json()["detail"]


def test_concurrent_requests_share_a_forward_pass(tiny_checkpoint: Path, boot_png: bytes) -> None:
    settings = make_settings(tiny_checkpoint, max_wait_ms=300, max_batch_size=8)
    with TestClient(create_app(settings)) as c:
        engine = c.app.state.services.engine  # type: ignore[attr-defined]
        before = engine.forward_passes

        def post(_: int) -> int:
            return c.post("/predict", files={"image": ("b.png", boot_png)}).status_code

        with ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(post, range(6)))
        assert codes == [200] * 6
        passes = engine.forward_passes - before
        assert passes < 6
        metrics = c.get("/metrics").text
        labels = '{model="d2l-resnet18",version="1"}'
        assert f"fashion_batch_size_count{labels} {float(engine.forward_passes)}" in metrics


def test_full_queue_is_503_with_retry_after(tiny_checkpoint: Path, boot_png: bytes) -> None:
    settings = make_settings(tiny_checkpoint, max_wait_ms=800, queue_size=1, max_batch_size=8)
    with TestClient(create_app(settings)) as c, ThreadPoolExecutor(1) as pool:
        engine = c.app.state.services.engine  # type: ignore[attr-defined]
        first = pool.submit(c.post, "/predict", files={"image": ("b.png", boot_png)})
        # The first request waits out its 800 ms batching window in the one-image queue.
        deadline = time.monotonic() + 5
        while engine.queued_images == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        second = c.post("/predict", files={"image": ("b.png", boot_png)})
        assert second.status_code == 503 and second.headers["retry-after"] == "1"
        assert "at capacity" in second.json()["detail"]
        assert first.result().status_code == 200
        assert c.post("/predict", files={"image": ("b.png", boot_png)}).status_code == 200


def test_request_waiting_past_its_timeout_is_504(tiny_checkpoint: Path, boot_png: bytes) -> None:
    settings = make_settings(tiny_checkpoint, max_wait_ms=500, request_timeout_s=0.05)
    with TestClient(create_app(settings)) as c:
        r = c.post("/predict", files={"image": ("b.png", boot_png)})
        assert r.status_code == 504 and "timeout" in r.json()["detail"]


@pytest.mark.parametrize(
    ("threshold", "head_bias", "flagged"),
    [
        (None, None, False),
        (0.0, None, False),
        (1.01, None, True),  # no garment head: the top probability is the score
        (0.5, 5.0, False),  # a head sure of a garment (sigmoid(5) = 0.993) whatever the classes
        (0.5, -5.0, True),  # a head sure of none (0.007)
    ],
)
def test_none_of_the_classes_flag(
    tiny_checkpoint: Path,
    tmp_path: Path,
    boot_png: bytes,
    threshold: float | None,
    head_bias: float | None,
    flagged: bool,
) -> None:
    path = copy_checkpoint(tiny_checkpoint, tmp_path / "calibrated")
    if threshold is not None:
        calibration: dict[str, object] = {"temperature": 1.0, "flag_threshold": threshold}
        if head_bias is not None:
            calibration["garment_head"] = {"weight": [0.0] * 512, "bias": head_bias}
        update_metadata(path, calibration=calibration)
    with TestClient(create_app(make_settings(path))) as c:
        one = c.post("/predict", files={"image": ("b.png", boot_png)})
        batch = c.post("/predict/batch", files=[("images", ("b.png", boot_png))])
    assert one.status_code == batch.status_code == 200
    assert one.json()["none_of_the_classes"] is flagged
    assert batch.json()["results"][0]["none_of_the_classes"] is flagged
    # The score behind the flag, the same in both routes: the head's, else the top probability.
    score = one.json()["garment_score"]
    assert batch.json()["results"][0]["garment_score"] == score
    if head_bias is not None:
        assert score == pytest.approx(1 / (1 + math.exp(-head_bias)), abs=1e-6)
    else:
        assert score == one.json()["confidence"]
    if threshold is not None:
        assert (score < threshold) is flagged


def test_openapi_declares_the_garment_score(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("PredictResponse", "BatchItem"):
        field = schemas[name]["properties"]["garment_score"]
        assert field["type"] == "number" and "none_of_the_classes" in field["description"]
        assert "garment_score" in schemas[name]["required"]


def test_the_checkpoint_temperature_is_applied(
    tiny_checkpoint: Path, tmp_path: Path, boot_png: bytes
) -> None:
    answers = {}
    for temperature in (1.0, 1000.0):
        path = copy_checkpoint(tiny_checkpoint, tmp_path / f"t{temperature:g}")
        update_metadata(path, calibration={"temperature": temperature})
        with TestClient(create_app(make_settings(path))) as c:
            answers[temperature] = c.post("/predict", files={"image": ("b.png", boot_png)}).json()
    assert answers[1000.0]["class_id"] == answers[1.0]["class_id"]  # the ranking stays
    assert answers[1000.0]["confidence"] == pytest.approx(0.1, abs=0.01)  # nearly uniform
    assert answers[1.0]["confidence"] > answers[1000.0]["confidence"]


EXPLAIN_FIELDS = {"network_input", "network_input_box", "saliency"}


def test_explain_returns_what_the_network_saw_and_where_its_evidence_lies(
    client: TestClient, boot_png: bytes
) -> None:
    photo = png_bytes(255 - np.kron(np.eye(4, dtype=np.uint8) * 200, np.ones((30, 40), np.uint8)))
    for data in (boot_png, photo):
        plain = client.post("/predict", files={"image": ("a.png", data)}).json()
        r = client.post("/predict?explain=true", files={"image": ("a.png", data)})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) >= EXPLAIN_FIELDS and not EXPLAIN_FIELDS & set(plain)
        assert body["label"] == plain["label"]
        assert body["confidence"] == pytest.approx(plain["confidence"], abs=1e-5)
        seen = Image.open(io.BytesIO(base64.b64decode(body["network_input"])))
        assert seen.format == "PNG" and seen.size == (28, 28) and seen.mode == "L"
        assert (np.asarray(seen) == prepare_photo(data)).all()
        s = np.array(body["saliency"])
        assert s.shape == (28, 28) and s.min() >= 0 and s.max() <= 1
        left, top, right, bottom = body["network_input_box"]
        assert right > left and bottom > top
    # A Fashion-MNIST image is shown whole.
    boot = client.post("/predict?explain=1", files={"image": ("b.png", boot_png)}).json()
    assert boot["network_input_box"] == [0, 0, 1, 1]


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_bad_explain_is_422(client: TestClient, boot_png: bytes, value: str) -> None:
    r = client.post(f"/predict?explain={value}", files={"image": ("b.png", boot_png)})
    assert r.status_code == 422 and "explain" in r.json()["detail"]


def test_batch_explains_each_image_in_order(client: TestClient, test_images: Split) -> None:
    files = [("images", (f"{i}.png", png_bytes(test_images.images[i].numpy()))) for i in range(3)]
    plain = client.post("/predict/batch", files=files).json()["results"]
    explained = client.post("/predict/batch?explain=true", files=files).json()["results"]
    assert not any(EXPLAIN_FIELDS & set(r) for r in plain)
    for i, (p, e) in enumerate(zip(plain, explained, strict=True)):
        assert e["filename"] == p["filename"] == f"{i}.png" and e["label"] == p["label"]
        seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(e["network_input"]))))
        assert (seen == test_images.images[i].numpy()).all()


def test_explain_over_what_the_queue_holds_is_a_clear_422(
    tiny_checkpoint: Path, boot_png: bytes
) -> None:
    with TestClient(create_app(make_settings(tiny_checkpoint, queue_size=100))) as c:
        one = c.post("/predict?explain=true", files={"image": ("b.png", boot_png)})
        assert one.status_code == 200
        two = c.post("/predict/batch?explain=true", files=[("images", ("b.png", boot_png))] * 2)
        assert two.status_code == 422
        assert "at most 1 image(s)" in two.json()["detail"]
