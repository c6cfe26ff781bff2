"""Exact Fréchet distance between two Gaussians, in float64, without a matrix square root.

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}).

pytorch-fid gets the last term from ``scipy.linalg.sqrtm(S1 @ S2)`` (a Schur decomposition of a
non-symmetric matrix, ~25 n^3 flops). Only its trace is needed: with the Cholesky factor S1 = L L^T,
S1 S2 is similar to the symmetric PSD matrix L^T S2 L (S1 S2 = L (L^T S2 L) L^{-1}), so

    tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(L^T S2 L)),

which costs one Cholesky, two matrix products and one symmetric eigenvalue solve (values only). The answer
is the same quantity, not an approximation; see bench/bench_frechet.py for agreement and speed.

Singular covariances: S1 needs a Cholesky factor, so when either covariance is rank-deficient (n <= D by
construction, or the factorisation fails numerically) ``eps * I`` is added to *both* covariances and the
result says so (``eps_added=True`` and a ``note``). The returned value is then the exact Fréchet distance of
the regularised Gaussians N(mu, S + eps I); it differs from pytorch-fid's fallback, which adds eps only
inside the square root and keeps tr(S1) + tr(S2) unregularised, by exactly 2 * D * eps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .stats import FeatureStats


@dataclass(frozen=True)
class FrechetResult:
    """``value``: the distance; ``eps_added``: whether eps*I regularised both covariances; ``note``: why."""

    value: float
    eps_added: bool = False
    note: str = ""

    def __float__(self) -> float:
        return self.value


def _cholesky(sigma: torch.Tensor, rank_tolerance: bool = True) -> torch.Tensor | None:
    """Lower Cholesky factor, or None when the matrix is not numerically positive definite.

    Rounding lets the factorisation of an exactly singular matrix succeed with a pivot of ~1e-16; with
    ``rank_tolerance`` such a pivot (squared, below D * machine-eps * 10 of the largest variance, numpy's
    rank tolerance scaled up) counts as singular. Genuine small pivots of full-rank sample covariances are
    orders of magnitude larger.
    """
    factor, info = torch.linalg.cholesky_ex(sigma)
    if int(info) != 0:
        return None
    if not rank_tolerance:
        return factor
    tol = float(sigma.diagonal().max()) * sigma.shape[0] * torch.finfo(sigma.dtype).eps * 10
    return factor if float(factor.diagonal().square().min()) > tol else None


def _trace_sqrt(chol1: torch.Tensor, sigma2: torch.Tensor) -> float:
    """tr((S1 S2)^{1/2}) from the Cholesky factor of S1: sum of sqrt(eigenvalues of L^T S2 L)."""
    m = chol1.T @ (sigma2 @ chol1)
    m = (m + m.T) * 0.5  # remove rounding asymmetry before the symmetric solver
    eigenvalues = torch.linalg.eigvalsh(m)
    # Eigenvalues of a PSD product are >= 0; tiny negatives are rounding.
    return float(eigenvalues.clamp_min(0).sqrt().sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float | None:
    """tr((S1 S2)^{1/2}) for symmetric PSD S1, S2 with S1 positive definite; None when S1 is not."""
    # torch (MKL) rather than numpy/scipy: the callers run torch models in the same process, and two
    # thread pools busy-waiting against each other made scipy's LAPACK several times slower there.
    chol = _cholesky(_tensor(sigma1))
    return None if chol is None else _trace_sqrt(chol, _tensor(sigma2))


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def frechet_distance(a: FeatureStats, b: FeatureStats, eps: float = 1e-6) -> FrechetResult:
    """Fréchet distance between N(a.mu, a.sigma) and N(b.mu, b.sigma); see the module docstring.

    Raises ValueError on mismatched dimensions, non-finite stats, or stats from different backbones.
    """
    if a.backbone and b.backbone and a.backbone != b.backbone:
        raise ValueError(
            f"refusing to compare feature stats of different backbones: {a.backbone!r} vs {b.backbone!r}"
        )
    if a.dim != b.dim:
        raise ValueError(f"feature dimensions differ: {a.dim} vs {b.dim}")
    for s in (a, b):
        if not (np.isfinite(s.mu).all() and np.isfinite(s.sigma).all()):
            raise ValueError("feature stats contain NaN or Inf")

    diff = a.mu - b.mu
    mean_term = float(diff @ diff)
    s1, s2 = _tensor(a.sigma), _tensor(b.sigma)
    # n <= D is singular by construction, even when rounding lets a Cholesky factorisation through.
    chol1 = None if a.rank_deficient else _cholesky(s1)
    singular = []
    if chol1 is None:
        singular.append("first")
    if b.rank_deficient or _cholesky(s2) is None:
        singular.append("second")
    note = ""
    if not singular:
        assert chol1 is not None
        tr_covmean = _trace_sqrt(chol1, s2)
    else:
        # Regularise both so the result stays the exact distance of two (slightly wider) Gaussians.
        eye = torch.eye(a.dim, dtype=torch.float64) * eps
        s1, s2 = s1 + eye, s2 + eye
        chol1 = _cholesky(s1, rank_tolerance=False)  # any factor will do: the eps is now deliberate
        if chol1 is None:
            raise ValueError(
                f"covariance is not positive semi-definite even after adding eps={eps} to the diagonal"
            )
        tr_covmean = _trace_sqrt(chol1, s2)
        note = (
            f"{' and '.join(singular)} covariance singular (n={a.n} and n={b.n} samples, D={a.dim}); "
            f"added eps={eps:g} * I to both covariances. Use more samples than feature dimensions for an "
            "unregularised FID."
        )
    value = mean_term + float(s1.trace()) + float(s2.trace()) - 2.0 * tr_covmean
    return FrechetResult(value=value, eps_added=bool(singular), note=note)
