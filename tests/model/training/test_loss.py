import math

import pytest
import torch

from model.data.fashion_mnist import load_split
from model.images.silhouette import to_model_input
from model.network.net import init_xavier, resnet18
from model.training.config import TrainConfig
from model.training.loss import SetCrossEntropy
from model.training.steps import make_stepper


def test_set_loss_by_hand() -> None:
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0]]))  # probabilities 1/6, 2/6, 3/6
    some = torch.tensor([[False, True, True]])
    assert SetCrossEntropy()(logits, some) == pytest.approx(-math.log(5 / 6))
    # Smoothing mixes in the mean -log p over all classes: (log 6 + log 3 + log 2) / 3.
    smoothed = 0.9 * -math.log(5 / 6) + 0.1 * (math.log(6) + math.log(3) + math.log(2)) / 3
    assert SetCrossEntropy(0.1)(logits, some) == pytest.approx(smoothed)
    # A set of every class costs nothing.
    assert SetCrossEntropy()(logits, torch.ones(1, 3, dtype=torch.bool)) == pytest.approx(0.0)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_set_loss_of_single_classes_is_cross_entropy(smoothing: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(64, 10, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    sets = torch.nn.functional.one_hot(labels, 10).bool()
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
    torch.testing.assert_close(SetCrossEntropy(smoothing)(logits, sets), expected)
    torch.testing.assert_close(SetCrossEntropy(smoothing)(logits, labels), expected)


def test_the_garment_loss_reads_the_pooled_features_and_trains_its_probe() -> None:
    torch.manual_seed(0)
    net = resnet18()
    init_xavier(net)
    split = load_split("train").subset(32)
    x = to_model_input(split.images, 28, 0.286, 0.353)
    # Half the batch garments (a class each), half none of the ten (an empty set).
    sets = torch.nn.functional.one_hot(split.labels, 10).bool()
    sets[16:] = False
    cfg = TrainConfig(garment_loss=1.0, outlier_exposure=1.0)
    stepper = make_stepper(net, cfg, torch.device("cpu"))
    assert stepper.garment is not None
    probe = stepper.garment.probe.weight.detach().clone()
    stepper(x, sets)
    features = stepper.garment.features
    assert features is not None and features.shape == (32, 512)  # the last Linear's input
    assert not torch.equal(stepper.garment.probe.weight, probe)  # the probe is optimised too
    # The loss alone: 0 when the probe is sure and right, large when sure and wrong.
    with torch.no_grad():
        stepper.garment.probe.weight.zero_()
        stepper.garment.probe.bias.fill_(30.0)
        garments = torch.nn.functional.one_hot(split.labels, 10).bool()
        assert float(stepper.garment(garments)) == pytest.approx(0.0, abs=1e-6)
        assert float(stepper.garment(split.labels)) == pytest.approx(0.0, abs=1e-6)  # class ids
        assert float(stepper.garment(torch.zeros_like(garments))) > 10
