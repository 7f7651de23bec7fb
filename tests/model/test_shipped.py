"""The checkpoint shipped in model/weights: accuracy on the real test set, size, clean loading."""

import warnings

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from model.checkpoint import SHIPPED_CHECKPOINT, Checkpoint, checkpoint_files, load_checkpoint
from model.data import load_split
from model.evaluate import evaluate, evaluate_photos
from tests.helpers import REAL_PHOTOS, make_settings

D2L_BEST_PUBLISHED = 0.918


@pytest.fixture(scope="module")
def shipped() -> Checkpoint:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shipped file must load without any warning
        return load_checkpoint(SHIPPED_CHECKPOINT)


def test_shipped_checkpoint_beats_d2l_on_the_real_test_set(shipped: Checkpoint) -> None:
    report = evaluate(shipped, load_split("test"))
    assert report["images"] == 10_000
    assert report["accuracy"] >= 0.92 > D2L_BEST_PUBLISHED
    # The accuracy recorded at training time is the one measured here.
    assert report["accuracy"] == pytest.approx(shipped.meta["metrics"]["test_acc"], abs=2e-3)


def test_shipped_files_are_small_and_half_precision(shipped: Checkpoint) -> None:
    weights, meta = checkpoint_files(SHIPPED_CHECKPOINT)
    assert weights.stat().st_size <= 25 * 1024 * 1024
    assert shipped.meta["weights_dtype"] in ("float16", "bfloat16")
    assert (weights.parent / "curves.png").stat().st_size > 1000 and meta.exists()


def test_service_starts_on_the_shipped_checkpoint_without_warnings(boot_png: bytes) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = create_app(make_settings(SHIPPED_CHECKPOINT))
        with TestClient(app) as c:
            r = c.post("/predict", files={"image": ("boot.png", boot_png)})
    assert r.status_code == 200 and r.json()["label"] == "Ankle boot"


def test_preprocessing_beats_plain_resize_on_real_photos(shipped: Checkpoint) -> None:
    report = evaluate_photos(shipped, REAL_PHOTOS)
    assert report["photos"] == 38
    assert report["accuracy"]["preprocessed"] > report["accuracy"]["plain"]
