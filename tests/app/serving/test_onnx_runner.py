import os
from pathlib import Path

import numpy as np
import pytest
import torch

from app.config import default_inference_threads
from app.serving import onnx_runner
from app.serving.onnx_runner import build_runner, choose_cpu_precision
from app.serving.runner import ModelOptions
from model.data.fashion_mnist import Split, load_split
from model.export import ACCURACY_DROP_MAX, AGREEMENT_MIN
from model.images.silhouette import to_model_input
from model.network.checkpoint import (
    SHIPPED_CHECKPOINT,
    Checkpoint,
    copy_checkpoint,
    load_checkpoint,
)
from model.network.checkpoint_info import graph_file, read_checkpoint_info, update_metadata

VARIANTS = {
    "torch-plain": ModelOptions(backend="torch", fold_batch_norm=False, channels_last=False),
    "torch-folded-channels-last": ModelOptions(backend="torch"),
    "torch-1-thread": ModelOptions(backend="torch", threads=1),
    "onnxruntime": ModelOptions(backend="onnxruntime", precision="fp32"),
    "onnxruntime-2-threads": ModelOptions(backend="onnxruntime", threads=2, precision="fp32"),
}


@pytest.fixture(scope="module")
def shipped() -> Checkpoint:
    return load_checkpoint(SHIPPED_CHECKPOINT)


def _reference(ckpt: Checkpoint, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        x = to_model_input(images, ckpt.input_size, ckpt.mean, ckpt.std)
        return (ckpt.model.eval()(x) / ckpt.temperature).softmax(1).numpy()


def _garment_reference(ckpt: Checkpoint, images: torch.Tensor) -> np.ndarray:
    """The garment head's probability by hand from the metadata, or the top probability."""
    head = ckpt.garment_head
    if head is None:
        return _reference(ckpt, images).max(1)
    with torch.no_grad():
        x = to_model_input(images, ckpt.input_size, ckpt.mean, ckpt.std)
        features = ckpt.model.eval()[:-1](x).double().numpy()
    z = features @ np.asarray(head["weight"], dtype=np.float64) + head["bias"]
    return 1 / (1 + np.exp(-z))


@pytest.fixture(scope="module")
def with_head(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    """The shipped weights with a garment head of seeded random weights."""
    path = copy_checkpoint(SHIPPED_CHECKPOINT, tmp_path_factory.mktemp("ckpt") / "head")
    weight = np.random.default_rng(0).normal(0, 0.05, 512).tolist()
    update_metadata(
        path, calibration={"temperature": 0.8, "garment_head": {"weight": weight, "bias": 0.3}}
    )
    return load_checkpoint(path)


@pytest.fixture(scope="module")
def resized(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    """The shipped weights declared for a 40x40 input: torch resizes before the ONNX graph."""
    path = copy_checkpoint(SHIPPED_CHECKPOINT, tmp_path_factory.mktemp("ckpt") / "at40")
    update_metadata(path, input_size=40)
    return load_checkpoint(path)


@pytest.mark.parametrize("checkpoint", ["shipped", "resized", "with_head"])
@pytest.mark.parametrize("name", VARIANTS)
def test_every_runner_gives_the_plain_models_probabilities_and_garment_score(
    request: pytest.FixtureRequest, test_images: Split, name: str, checkpoint: str
) -> None:
    ckpt = request.getfixturevalue(checkpoint)
    expected = _reference(ckpt, test_images.images)
    got = build_runner(ckpt, "cpu", VARIANTS[name])(test_images.images.numpy())
    np.testing.assert_allclose(got.probs, expected, atol=1e-5, rtol=1e-4)
    assert np.array_equal(got.probs.argmax(1), expected.argmax(1))
    garment = _garment_reference(ckpt, test_images.images)
    np.testing.assert_allclose(got.garment, garment, atol=1e-5, rtol=1e-4)


@pytest.mark.slow  # all 10,000 test images
def test_onnxruntime_top1_equals_torch_on_the_whole_test_set(shipped: Checkpoint) -> None:
    """The condition for ONNX Runtime as the default CPU backend: no prediction changes."""
    test = load_split("test")
    runner = build_runner(shipped, "cpu", ModelOptions(backend="onnxruntime", precision="fp32"))
    for start in range(0, len(test), 1000):
        images = test.images[start : start + 1000]
        expected = _reference(shipped, images).argmax(1)
        got = runner(images.numpy()).probs.argmax(1)
        assert np.array_equal(got, expected), f"images {start}-{start + 999}"


@pytest.mark.slow  # all 10,000 test images
def test_int8_keeps_accuracy_and_agrees_with_fp32_on_the_whole_test_set(
    shipped: Checkpoint,
) -> None:
    """The guard on lower precision: INT8 serves only within 0.2 points of float32's test
    accuracy and with >= 99.5 % top-1 agreement, measured here on all 10,000 test images."""
    test = load_split("test")
    images, labels = test.images.numpy(), test.labels.numpy()
    fp32 = build_runner(shipped, "cpu", ModelOptions(backend="onnxruntime", precision="fp32"))
    int8 = build_runner(shipped, "cpu", ModelOptions(backend="onnxruntime", precision="int8"))
    a = np.concatenate([fp32(images[i : i + 1000]).probs.argmax(1) for i in range(0, 10_000, 1000)])
    b = np.concatenate([int8(images[i : i + 1000]).probs.argmax(1) for i in range(0, 10_000, 1000)])
    assert (a == labels).mean() - (b == labels).mean() <= ACCURACY_DROP_MAX
    assert (a == b).mean() >= AGREEMENT_MIN
    assert int8.precision == "int8" and "int8" in int8.name


def test_int8_probabilities_are_not_quantized(shipped: Checkpoint) -> None:
    """The heads stay in float: calibrated probabilities and garment scores close to float32's,
    not in the 1/255 steps a quantized softmax or sigmoid gives."""
    images = load_split("test").images.numpy()[:512]
    options = {p: ModelOptions(backend="onnxruntime", precision=p) for p in ("fp32", "int8")}
    fp32, int8 = (build_runner(shipped, "cpu", options[p])(images) for p in ("fp32", "int8"))
    for a, b in ((fp32.probs, int8.probs), (fp32.garment, int8.garment)):
        on_grid = np.isclose(b * 255, np.round(b * 255), atol=1e-3).mean()
        assert on_grid < 0.2, f"{on_grid:.0%} of INT8 outputs are multiples of 1/255"
        assert np.median(np.abs(b - a)) < 1e-3


def test_int8_is_refused_without_a_passed_check(tmp_path: Path) -> None:
    path = copy_checkpoint(SHIPPED_CHECKPOINT, tmp_path / "c")
    meta = read_checkpoint_info(path).meta
    update_metadata(
        path, int8={**meta["int8"], "guard": {**meta["int8"]["guard"], "passed": False}}
    )
    ckpt = read_checkpoint_info(path)
    with pytest.raises(RuntimeError, match="did not pass"):
        choose_cpu_precision("int8", ckpt)
    assert choose_cpu_precision("auto", ckpt)[0] == "fp32"
    update_metadata(path, int8=None)
    assert choose_cpu_precision("auto", read_checkpoint_info(path))[0] == "fp32"


@pytest.mark.parametrize(
    ("flags", "precision", "why"),
    [
        ({"avx2", "avx512f", "avx512_vnni"}, "int8", "the CPU has avx2, avx512_vnni"),
        ({"avx_vnni"}, "int8", "the CPU has avx_vnni"),
        ({"amx_int8"}, "int8", "the CPU has amx_int8"),
        ({"avx", "avx2", "avx512f"}, "int8", "the CPU has avx2"),
        ({"sse4_2", "avx"}, "fp32", "no AVX2"),
        (set(), "fp32", "no AVX2"),
    ],
)
def test_auto_precision_follows_the_cpu(
    shipped: Checkpoint, monkeypatch: pytest.MonkeyPatch, flags: set[str], precision: str, why: str
) -> None:
    monkeypatch.setattr(onnx_runner, "cpu_flags", lambda: frozenset(flags))
    got, reason = choose_cpu_precision("auto", shipped)
    assert got == precision and why in reason, reason


def test_a_stale_graph_file_is_exported_again(tmp_path: Path, test_images: Split) -> None:
    path = copy_checkpoint(SHIPPED_CHECKPOINT, tmp_path / "c")
    graph_file(path).write_bytes(graph_file(SHIPPED_CHECKPOINT).read_bytes())  # a current one
    update_metadata(path, calibration={"temperature": 2.0})  # now it is stale
    ckpt = load_checkpoint(path)
    got = build_runner(ckpt, "cpu", ModelOptions(backend="onnxruntime", precision="fp32"))
    np.testing.assert_allclose(
        got(test_images.images.numpy()).probs, _reference(ckpt, test_images.images), atol=1e-5
    )


def test_onnxruntime_refuses_a_cuda_device(shipped: Checkpoint) -> None:
    with pytest.raises(RuntimeError, match="CPU only"):
        build_runner(shipped, "cuda:0", ModelOptions(backend="onnxruntime"))


def test_auto_backend_is_onnxruntime_on_the_cpu(shipped: Checkpoint) -> None:
    assert build_runner(shipped, "cpu", ModelOptions()).name.startswith("onnxruntime")


@pytest.mark.parametrize(
    ("cores", "at_28", "at_96"), [(1, 1, 1), (2, 1, 2), (4, 3, 4), (16, 15, 16)]
)
def test_default_threads_leave_a_core_to_the_event_loop_only_at_28x28(
    monkeypatch: pytest.MonkeyPatch, cores: int, at_28: int, at_96: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert (default_inference_threads(28), default_inference_threads(96)) == (at_28, at_96)


@pytest.mark.parametrize(("torch_here", "graph_here", "expected"), [
    (False, False, "int8"),  # a fresh clone served without torch: the shipped INT8 graph
    (True, False, "fp32"),  # torch exports the float32 graph
    (False, True, "fp32"),  # the float32 graph is there
])  # fmt: skip
def test_without_avx2_int8_serves_only_when_nothing_else_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, torch_here: bool, graph_here: bool,
    expected: str,
) -> None:  # fmt: skip
    path = copy_checkpoint(SHIPPED_CHECKPOINT, tmp_path / "c")
    if graph_here:
        graph_file(path).write_bytes(graph_file(SHIPPED_CHECKPOINT).read_bytes())
    monkeypatch.setattr(onnx_runner, "cpu_flags", lambda: frozenset({"avx"}))
    monkeypatch.setattr(onnx_runner, "installed", lambda package: torch_here or package != "torch")
    precision, why = choose_cpu_precision("auto", read_checkpoint_info(path))
    assert precision == expected, why
    assert ("no torch" in why) == (expected == "int8"), why
