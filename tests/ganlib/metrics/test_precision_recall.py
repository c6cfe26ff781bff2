"""Precision/recall (k-NN radii) on point sets whose answers follow from geometry."""

from __future__ import annotations

import numpy as np
import pytest

from ganlib.metrics import precision_recall


def grid(offset_x: float = 0.0) -> np.ndarray:
    """The 10x10 integer grid: with k=3, interior/edge radii are 1, corner radii sqrt(2)."""
    return np.array([(i + offset_x, j) for i in range(10) for j in range(10)], dtype=np.float64)


def test_identical_sets_are_perfect() -> None:
    pts = grid()
    pr = precision_recall(pts, pts.copy(), k=3)
    assert (pr.precision, pr.recall, pr.k) == (1.0, 1.0, 3)


def test_disjoint_sets_score_zero() -> None:
    pr = precision_recall(grid(), grid(offset_x=100.0), k=3)
    assert (pr.precision, pr.recall) == (0.0, 0.0)


def test_precision_follows_the_radii() -> None:
    # Fake points (padded with far-away points so the fake set has k+1 members):
    #   (3.5, 6): 0.5 from a grid point (radius 1)         -> inside
    #   (4.5, 4.5): 0.707 from a grid point (radius 1)     -> inside
    #   (-1.2, 0): 1.2 from corner (0, 0) (radius 1.414)   -> inside
    #   (-1.2, 5): 1.2 from edge point (0, 5) (radius 1)   -> outside
    #   (20, 20), (30, 30), (40, 40): far                  -> outside
    fake = np.array(
        [(3.5, 6), (4.5, 4.5), (-1.2, 0), (-1.2, 5), (20, 20), (30, 30), (40, 40)], dtype=np.float64
    )
    pr = precision_recall(grid(), fake, k=3)
    assert pr.precision == pytest.approx(3 / 7)
    # Recall: (4.5, 4.5)'s 3rd fake neighbour is (-1.2, 0) at 7.26, and no grid point is farther than
    # 6.37 from it, so its ball alone covers the whole grid (sparse sets make wide balls).
    assert pr.recall == 1.0


def test_recall_counts_covered_modes() -> None:
    # Real data has two far-apart modes; the generator covers only one of them exactly.
    real = np.concatenate([grid(), grid(offset_x=100.0)])
    fake = grid()
    pr = precision_recall(real, fake, k=3)
    assert pr.precision == 1.0
    assert pr.recall == 0.5


def test_larger_k_never_lowers_scores() -> None:
    rng = np.random.default_rng(0)
    real, fake = rng.standard_normal((200, 4)), rng.standard_normal((150, 4)) + 0.7
    small, large = precision_recall(real, fake, k=2), precision_recall(real, fake, k=8)
    assert large.precision >= small.precision and large.recall >= small.recall
