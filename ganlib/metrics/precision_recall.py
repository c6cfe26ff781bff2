"""Improved precision and recall (Kynkäänniemi et al. 2019) from k-nearest-neighbour radii.

Each set's support is approximated by the union of balls around its samples, the radius of each ball
being the distance to that sample's k-th nearest neighbour within its own set. Precision is the fraction
of fake samples inside the real support; recall is the fraction of real samples inside the fake support.
A point on a ball's boundary counts as inside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # The matrix-product expansion is ~15x faster than direct differences at D=2048; in float64 its
    # rounding (~1e-7 absolute near 0) is far below any k-NN radius.
    return torch.cdist(a, b, compute_mode="use_mm_for_euclid_dist")


def knn_radii(x: torch.Tensor, k: int, batch_size: int = 1024) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest other row."""
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples for k-NN radii; got {x.shape[0]}")
    radii = []
    for start in range(0, x.shape[0], batch_size):
        d = _distances(x[start : start + batch_size], x)
        # k + 1 smallest: the first is the point itself (distance 0).
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, batch_size: int) -> float:
    """Fraction of ``points`` within radius of at least one centre."""
    inside = 0
    for start in range(0, points.shape[0], batch_size):
        d = _distances(points[start : start + batch_size], centres)
        inside += int((d <= radii[None, :]).any(dim=1).sum())
    return inside / points.shape[0]


def precision_recall(
    real: np.ndarray, fake: np.ndarray, k: int = 3, batch_size: int = 1024
) -> PrecisionRecall:
    """Precision and recall of ``fake[N2, D]`` against ``real[N1, D]`` with k-NN radii (k=3 as the paper)."""
    r = torch.from_numpy(np.asarray(real, dtype=np.float64))
    f = torch.from_numpy(np.asarray(fake, dtype=np.float64))
    if r.ndim != 2 or f.ndim != 2 or r.shape[1] != f.shape[1]:
        raise ValueError(
            f"need two [N, D] feature sets of equal D; got {tuple(r.shape)} and {tuple(f.shape)}"
        )
    real_radii = knn_radii(r, k, batch_size)
    fake_radii = knn_radii(f, k, batch_size)
    return PrecisionRecall(
        precision=_coverage(f, r, real_radii, batch_size),
        recall=_coverage(r, f, fake_radii, batch_size),
        k=k,
    )
