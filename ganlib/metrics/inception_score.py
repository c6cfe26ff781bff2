"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) from class probabilities.

As in the original code, the samples are cut into ``splits`` equal parts; p(y) is the mean prediction
within a part, and the mean and standard deviation of the per-part scores are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy


@dataclass(frozen=True)
class InceptionScore:
    mean: float
    std: float
    splits: int


def inception_score(probs: np.ndarray, splits: int = 10) -> InceptionScore:
    """IS of class probabilities ``probs[N, C]`` (rows sum to 1). Bounded by [1, C]."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < splits or splits < 1:
        raise ValueError(f"need probs [N >= splits, C] and splits >= 1; got {p.shape} and splits={splits}")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("each row of probs must be a probability distribution (>= 0, summing to 1)")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)
        # xlogy gives 0 log 0 = 0, so one-hot predictions are fine.
        kl = (xlogy(part, part) - xlogy(part, marginal)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return InceptionScore(mean=float(np.mean(scores)), std=float(np.std(scores)), splits=splits)
