import os

import pytest
import torch

from app.config import default_inference_threads
from app.runtime import ModelOptions, build_runner
from model.checkpoint import SHIPPED_CHECKPOINT, Checkpoint, load_checkpoint
from model.data import Split, load_split
from model.preprocess import InputSpec, to_model_input

VARIANTS = {
    "torch-plain": ModelOptions(backend="torch", fold_batch_norm=False, channels_last=False),
    "torch-folded-channels-last": ModelOptions(backend="torch"),
    "torch-1-thread": ModelOptions(backend="torch", threads=1),
    "onnxruntime": ModelOptions(backend="onnxruntime"),
    "onnxruntime-2-threads": ModelOptions(backend="onnxruntime", threads=2),
}


@pytest.fixture(scope="module")
def shipped() -> Checkpoint:
    return load_checkpoint(SHIPPED_CHECKPOINT)


def _reference(ckpt: Checkpoint, images: torch.Tensor, input_size: int) -> torch.Tensor:
    with torch.no_grad():
        x = to_model_input(images, input_size, ckpt.mean, ckpt.std)
        return ckpt.model.eval()(x).softmax(1)


def _runner(ckpt: Checkpoint, options: ModelOptions, input_size: int):  # type: ignore[no-untyped-def]
    spec = InputSpec(input_size, ckpt.mean, ckpt.std)
    return build_runner(ckpt.model, torch.device("cpu"), options, spec)


@pytest.mark.parametrize("input_size", [28, 40])  # 40: the resize happens before the ONNX graph
@pytest.mark.parametrize("name", VARIANTS)
def test_every_runner_gives_the_plain_models_probabilities(
    shipped: Checkpoint, test_images: Split, name: str, input_size: int
) -> None:
    expected = _reference(shipped, test_images.images, input_size)
    got = _runner(shipped, VARIANTS[name], input_size)(test_images.images)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_onnxruntime_top1_equals_torch_on_the_whole_test_set(shipped: Checkpoint) -> None:
    """The condition for ONNX Runtime as the default CPU backend: no prediction changes."""
    test = load_split("test")
    runner = _runner(shipped, ModelOptions(backend="onnxruntime"), 28)
    for start in range(0, len(test), 1000):
        images = test.images[start : start + 1000]
        expected = _reference(shipped, images, 28).argmax(1)
        assert torch.equal(runner(images).argmax(1), expected), f"images {start}-{start + 999}"


def test_onnxruntime_refuses_a_cuda_device(shipped: Checkpoint) -> None:
    with pytest.raises(RuntimeError, match="CPU only"):
        options = ModelOptions(backend="onnxruntime")
        build_runner(shipped.model, torch.device("cuda"), options, InputSpec(28, 0.0, 1.0))


def test_auto_backend_is_onnxruntime_on_the_cpu(shipped: Checkpoint) -> None:
    assert _runner(shipped, ModelOptions(), 28).name.startswith("onnxruntime")


def test_default_threads_leave_a_core_to_the_event_loop_only_at_28x28() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_inference_threads(28) == max(1, cores - 1)
    assert default_inference_threads(96) == cores
