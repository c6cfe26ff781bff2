"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel.

k(x, y) = (x . y / D + 1)^3, averaged over random subsets as torch-fidelity and clean-fid do: each subset
draws ``subset_size`` rows without replacement from each side; the mean and standard deviation over
subsets are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KIDResult:
    mean: float
    std: float
    subset_size: int
    num_subsets: int


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """(x y^T / D + coef0)^degree, the KID kernel (gamma = 1 / D)."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
    """Unbiased MMD^2 estimate between samples x[m, D] and y[m, D] of equal size."""
    m = x.shape[0]
    k_xx = polynomial_kernel(x, x, degree)
    k_yy = polynomial_kernel(y, y, degree)
    k_xy = polynomial_kernel(x, y, degree)
    # Within-set sums exclude i == j (that is what makes the estimate unbiased); cross pairs use all m^2.
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    seed: int = 0,
) -> KIDResult:
    """KID between feature sets ``real[N1, D]`` and ``fake[N2, D]``.

    ``subset_size`` is capped at min(N1, N2) (so small sets still give a value); the capped size is
    returned in the result.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"KID needs two [N, D] feature sets of equal D; got {real.shape} and {fake.shape}")
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    if num_subsets < 1:
        raise ValueError("num_subsets must be >= 1")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        values[i] = mmd2_unbiased(x, y, degree)
    return KIDResult(
        mean=float(values.mean()), std=float(values.std()), subset_size=m, num_subsets=num_subsets
    )
