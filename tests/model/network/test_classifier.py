"""The served model: uint8 images to (calibrated probabilities, garment score)."""

from __future__ import annotations

import pytest
import torch

from model.images.silhouette import to_model_input
from model.network.checkpoint_info import InputSpec
from model.network.classifier import Calibrated, Classifier, GarmentHead
from model.network.net import init_xavier, resnet18


def _net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    net = resnet18()
    init_xavier(net)
    return net.eval()


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_probabilities_are_the_softmax_of_logits_over_the_temperature(temperature: float) -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    expected = torch.softmax(logits / temperature, 1)
    torch.testing.assert_close(Calibrated(temperature)(logits), expected)


def test_the_classifier_is_input_transform_network_and_heads() -> None:
    net, spec = _net(), InputSpec(32, 0.3, 0.4)
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    head = {"weight": [0.01] * 512, "bias": -0.5}
    probs, garment = Classifier(net, spec, temperature=0.8, garment=head).eval()(images)
    with torch.no_grad():
        x = to_model_input(images, 32, 0.3, 0.4)
        features = net[:-1](x)
        expected = torch.softmax(net[-1](features) / 0.8, 1)
        score = torch.sigmoid(features @ torch.full((512,), 0.01) - 0.5)
    torch.testing.assert_close(probs, expected)
    torch.testing.assert_close(garment, score)


def test_without_a_garment_head_the_score_is_the_top_probability() -> None:
    probs, garment = Classifier(_net(), InputSpec(28, 0.3, 0.4)).eval()(
        torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    )
    torch.testing.assert_close(garment, probs.max(1).values)
    assert GarmentHead([1.0, -1.0], 0.0)(torch.tensor([[2.0, 2.0]])).item() == 0.5
