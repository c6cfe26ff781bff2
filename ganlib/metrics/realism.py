"""Per-sample realism score (Kynkäänniemi et al. 2019, "Improved precision and recall", Sec. 5).

The real manifold is the union of k-NN balls around real features (as for precision); the half of the
real samples with the largest radii is dropped first, so outliers do not inflate it. A generated sample's
realism is ``max_i r_i / ||f - phi_i||`` over the kept real samples: >= 1 inside some ball, larger the
deeper inside, near 0 far away. Unlike precision it ranks samples, which is what a flaw judge needs.
"""

from __future__ import annotations

import numpy as np
import torch

from .precision_recall import _distances, knn_radii


class RealManifold:
    """The pruned k-NN balls of ``real[N, D]`` features; ``realism(fake)`` scores samples against them."""

    def __init__(self, real: np.ndarray, k: int = 3, keep: float = 0.5, batch_size: int = 1024) -> None:
        r = torch.from_numpy(np.asarray(real, dtype=np.float64))
        if r.ndim != 2 or r.shape[0] <= k:
            raise ValueError(f"need real features [N > k={k}, D]; got shape {tuple(r.shape)}")
        if not 0 < keep <= 1:
            raise ValueError(f"keep must be in (0, 1]; got {keep}")
        radii = knn_radii(r, k, batch_size)
        n_keep = max(1, round(keep * len(radii)))
        idx = radii.argsort()[:n_keep]  # the smallest radii: the paper discards the largest half
        self.centres, self.radii = r[idx], radii[idx]
        self.k, self.batch_size = k, batch_size

    def realism(self, fake: np.ndarray) -> np.ndarray:
        """Realism score of each row of ``fake[M, D]`` (float64)."""
        f = torch.from_numpy(np.asarray(fake, dtype=np.float64))
        if f.ndim != 2 or f.shape[1] != self.centres.shape[1]:
            raise ValueError(f"need fake features [M, {self.centres.shape[1]}]; got shape {tuple(f.shape)}")
        out = []
        for start in range(0, len(f), self.batch_size):
            d = _distances(f[start : start + self.batch_size], self.centres).clamp_min(1e-12)
            out.append((self.radii[None, :] / d).max(dim=1).values)
        return torch.cat(out).numpy() if out else np.zeros(0)
