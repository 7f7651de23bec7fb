"""Admission: a count of the images held, refused past capacity, given back on any exit."""

from __future__ import annotations

import pytest

from app.metrics import Metrics
from app.serving.admission import Admission, QueueFullError


def _in_flight(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("fashion_in_flight_images") or 0.0


def test_images_are_held_for_the_block_and_counted_in_the_gauge() -> None:
    metrics = Metrics()
    admission = Admission(5, metrics)
    with admission.admit(3):
        assert admission.held == 3 and _in_flight(metrics) == 3
        with admission.admit(2):
            assert admission.held == 5
    assert admission.held == 0 and _in_flight(metrics) == 0


def test_past_capacity_is_refused_and_nothing_is_taken() -> None:
    admission = Admission(4)
    with admission.admit(3):
        with pytest.raises(QueueFullError, match="at capacity \\(4 images"), admission.admit(2):
            pass
        assert admission.held == 3


def test_an_error_inside_the_block_gives_the_places_back() -> None:
    admission = Admission(2)
    with pytest.raises(RuntimeError), admission.admit(2):
        raise RuntimeError("a failed decode")
    with admission.admit(2):
        assert admission.held == 2


def test_with_several_models_each_holds_at_most_its_share() -> None:
    admission = Admission(8)
    with admission.admit(8, "a"):  # one model alone may take everything
        pass
    admission.set_models(2)
    with admission.admit(4, "a"):
        share = "'a' holds its share of the capacity \\(4 of 8"
        with pytest.raises(QueueFullError, match=share), admission.admit(1, "a"):
            pass
        with admission.admit(4, "b"):  # a's flood leaves b its places
            assert admission.held == 8
    assert admission.held == 0
