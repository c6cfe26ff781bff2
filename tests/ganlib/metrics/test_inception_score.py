"""Inception Score against its closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from ganlib.metrics import inception_score


def test_uniform_marginal_one_hot_gives_num_classes() -> None:
    c = 7
    probs = np.eye(c)[np.arange(70) % c]
    res = inception_score(probs, splits=1)
    assert res.mean == pytest.approx(c, rel=1e-12)
    balanced = np.eye(c)[np.tile(np.arange(c), 5)]
    assert inception_score(balanced, splits=5).mean == pytest.approx(c, rel=1e-12)  # each split holds all c


def test_constant_predictions_give_one() -> None:
    probs = np.tile(np.array([0.1, 0.6, 0.3]), (40, 1))
    res = inception_score(probs, splits=4)
    assert res.mean == pytest.approx(1.0, abs=1e-12)
    assert res.std == pytest.approx(0.0, abs=1e-12)


def test_two_class_closed_form() -> None:
    # Half (a, 1-a), half (1-a, a): marginal (1/2, 1/2), KL = log 2 + a log a + (1-a) log(1-a).
    a = 0.8
    probs = np.array([[a, 1 - a]] * 10 + [[1 - a, a]] * 10)
    expected = np.exp(np.log(2) + a * np.log(a) + (1 - a) * np.log(1 - a))
    assert inception_score(probs, splits=1).mean == pytest.approx(expected, rel=1e-12)


def test_rejects_non_probabilities() -> None:
    with pytest.raises(ValueError):
        inception_score(np.ones((10, 3)), splits=2)
    with pytest.raises(ValueError):
        inception_score(np.full((3, 2), 0.5), splits=5)
