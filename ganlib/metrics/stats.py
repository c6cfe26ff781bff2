"""Gaussian feature statistics (mean, covariance, count): the reference side of every FID."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """Mean ``mu[D]``, covariance ``sigma[D, D]`` (ddof=1, as pytorch-fid) and sample count ``n``.

    ``backbone`` names the feature network the features came from ("" when unknown); Fréchet distances
    between stats of different backbones are refused.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    backbone: str = ""

    def __post_init__(self) -> None:
        mu = np.asarray(self.mu, dtype=np.float64)
        sigma = np.asarray(self.sigma, dtype=np.float64)
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(
                f"FeatureStats: mu must be [D] and sigma [D, D]; got {mu.shape} and {sigma.shape}"
            )
        # frozen dataclass: write the float64 copies through object.__setattr__
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "n", int(self.n))

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    @property
    def rank_deficient(self) -> bool:
        """True when ``n <= D``: a sample covariance then has rank at most ``n - 1 < D``."""
        return self.n <= self.dim

    @classmethod
    def from_features(cls, features: np.ndarray, backbone: str = "") -> FeatureStats:
        """Stats of a feature matrix ``[N, D]`` (accumulated in float64)."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"features must be [N >= 2, D]; got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or Inf")
        return cls(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False), n=x.shape[0], backbone=backbone)

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` (keys mu, sigma, n, backbone); returns the path written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:  # a file object keeps numpy from appending a second ".npz"
            np.savez(f, mu=self.mu, sigma=self.sigma, n=np.int64(self.n), backbone=np.str_(self.backbone))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        with np.load(Path(path), allow_pickle=False) as z:
            backbone = str(z["backbone"]) if "backbone" in z.files else ""
            return cls(mu=z["mu"], sigma=z["sigma"], n=int(z["n"]), backbone=backbone)
