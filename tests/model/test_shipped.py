"""The checkpoint shipped in model/weights: accuracy on the real test set and on real photos,
calibration, size, clean loading."""

import warnings

import pytest
from fastapi.testclient import TestClient

from app.http.factory import create_app
from model.calibrate import (
    calibration_report,
    features_of,
    fm_slice,
    garment_scores,
    logits_from,
    logits_of,
    photo_scores,
)
from model.data.fashion_mnist import load_split
from model.data.photos import PhotoSet, load_photos, scored_accuracy, validation_split
from model.evaluate import evaluate, evaluate_photos
from model.network.checkpoint import (
    SHIPPED_CHECKPOINT,
    Checkpoint,
    checkpoint_files,
    load_checkpoint,
)
from tests.helpers import (
    CLOTHING_PHOTOS,
    REAL_PHOTOS,
    make_settings,
    needs_clothing_photos,
    needs_real_photos,
)

pytestmark = pytest.mark.slow  # the shipped checkpoint on every test image and photo

D2L_BEST_PUBLISHED = 0.918


@pytest.fixture(scope="module")
def shipped() -> Checkpoint:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shipped file must load without any warning
        return load_checkpoint(SHIPPED_CHECKPOINT)


def test_shipped_checkpoint_beats_d2l_on_the_real_test_set(shipped: Checkpoint) -> None:
    report = evaluate(shipped, load_split("test"))
    assert report["images"] == 10_000
    assert report["accuracy"] >= 0.93 > D2L_BEST_PUBLISHED  # measured 0.9316
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


@needs_real_photos
def test_real_product_photos(shipped: Checkpoint) -> None:
    report = evaluate_photos(shipped, REAL_PHOTOS)
    assert report["photos"] == 38
    # Measured 32/38 (the checkpoint before it: 27/38, the photo-free one 25/38); one photo of
    # slack for another CPU's rounding on a close call.
    assert round(report["accuracy"]["preprocessed"] * 38) >= 31
    assert report["accuracy"]["preprocessed"] > report["accuracy"]["plain"]


@pytest.fixture(scope="module")
def photo_validation() -> PhotoSet:
    photos = load_photos(CLOTHING_PHOTOS)
    return photos.select(validation_split(photos)[1])


@needs_clothing_photos
def test_clothing_photo_validation_split(shipped: Checkpoint, photo_validation: PhotoSet) -> None:
    accuracy = scored_accuracy(
        photo_validation, logits_of(shipped, photo_validation.images).argmax(1)
    )
    # Measured: mean 0.785 over the six scored types, shoes 0.725 (the checkpoint before it:
    # 0.795 and 0.725; the photo-free one 0.489 and 0.28); the goal is 0.82, no type under 0.70.
    assert accuracy["mean"] >= 0.76 and accuracy["shoes"] >= 0.65


@needs_clothing_photos
def test_calibration_and_the_none_of_the_ten_flag(
    shipped: Checkpoint, photo_validation: PhotoSet
) -> None:
    features = features_of(shipped, photo_validation.images)
    garment = garment_scores(shipped, features, shipped.garment_head, shipped.temperature)
    logits = logits_from(shipped, features)
    in_class, none_of_the_ten = photo_scores(logits, photo_validation, garment)
    fm, n = fm_slice(shipped)  # the training images the recipe held out
    assert n == shipped.meta["recipe"]["fm_holdout"] == 2000
    report = calibration_report(
        in_class, none_of_the_ten, fm, shipped.temperature, shipped.flag_threshold
    )
    assert report["ece_after"]["validation"] <= 0.05
    assert report["ece_after"]["validation"] < report["ece_before"]["validation"]
    assert report["flagged"]["in_class"] <= 0.05
    # Outlier exposure and the garment head: measured AUROC 0.951 on this split (0.904 from the
    # top probability, 0.72 before outlier exposure), 55 % of hats, shorts and skirts flagged
    # against 0.9 % of in-class photos.
    assert report["none_of_the_ten_auroc"] >= 0.85
    assert report["flagged"]["none_of_the_ten"] > 10 * report["flagged"]["in_class"]


def test_synthetic_non_garments_are_flagged(shipped: Checkpoint) -> None:
    """500 seeded non-garments nothing was fitted on (gradients, noise, shapes, text, textures):
    measured 86.6 % flagged at the shipped threshold (by the top probability on the network
    before: 75.6 %; the checkpoint before outlier exposure: 1.4 %)."""
    from model.calibrate import non_garment_scores

    confidence = non_garment_scores(shipped, shipped.temperature, shipped.garment_head)
    assert shipped.flag_threshold is not None
    assert float((confidence < shipped.flag_threshold).double().mean()) >= 0.84
