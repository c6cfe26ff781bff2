"""KID against a direct double loop and a closed form."""

from __future__ import annotations

import numpy as np
import pytest

from ganlib.metrics import kernel_inception_distance


def mmd2_double_loop(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 written out term by term, k(a, b) = (a.b / D + 1)^3."""
    m, d = x.shape

    def k(a, b) -> float:
        return (sum(float(a[i]) * float(b[i]) for i in range(d)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_whole_set_matches_double_loop() -> None:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((12, 5))
    fake = rng.standard_normal((12, 5)) * 1.4 + 0.3
    # One subset of all 12 rows: a permutation, to which MMD^2 is invariant.
    res = kernel_inception_distance(real, fake, num_subsets=1, subset_size=12)
    assert res.mean == pytest.approx(mmd2_double_loop(fake, real), rel=1e-12)
    assert res.std == 0.0 and res.subset_size == 12


def test_constant_features_closed_form() -> None:
    # Every subset has the same value: k(c,c) + k(e,e) - 2 k(c,e).
    d = 4
    c, e = np.full(d, 0.5), np.array([1.0, -1.0, 2.0, 0.0])
    real, fake = np.tile(c, (30, 1)), np.tile(e, (25, 1))

    def k(a, b) -> float:
        return (a @ b / d + 1) ** 3

    res = kernel_inception_distance(real, fake, num_subsets=7, subset_size=10)
    assert res.mean == pytest.approx(k(c, c) + k(e, e) - 2 * k(c, e), rel=1e-12)
    assert res.std == pytest.approx(0.0, abs=1e-12)
    assert res.num_subsets == 7


def test_subsets_near_zero_for_same_distribution_and_positive_otherwise() -> None:
    rng = np.random.default_rng(1)
    real = rng.standard_normal((400, 16))
    same = kernel_inception_distance(real, rng.standard_normal((400, 16)), num_subsets=20, subset_size=100)
    shifted = kernel_inception_distance(
        real, rng.standard_normal((400, 16)) + 0.5, num_subsets=20, subset_size=100
    )
    # Unbiased: the same-distribution mean sits within a few standard errors of 0.
    assert abs(same.mean) < 4 * same.std / np.sqrt(20) + 1e-3
    assert shifted.mean > 10 * max(same.std, 1e-4)


def test_subset_size_capped_and_deterministic() -> None:
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((30, 3)), rng.standard_normal((20, 3))
    a = kernel_inception_distance(real, fake, num_subsets=5, subset_size=1000, seed=3)
    b = kernel_inception_distance(real, fake, num_subsets=5, subset_size=1000, seed=3)
    assert a.subset_size == 20 and a == b
    with pytest.raises(ValueError):
        kernel_inception_distance(real, fake[:, :2])
