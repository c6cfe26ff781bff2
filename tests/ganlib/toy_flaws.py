"""A toy generator whose flaws we know: on about a quarter of the samples one unit paints a bright blob at a
latent-chosen place; every other unit paints smooth random texture that the real images have too."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganlib.models.base import Generator, ModelSpec

RES, UNITS, GRID = 16, 8, 8
BLOB_ABOVE = 0.65  # z[:, 0] above this: the sample gets a blob (P ~ 0.26)


class _Units(nn.Module):
    """[N, UNITS, GRID, GRID]: unit 0 is the blob (when ``blob_unit``), the rest random smooth fields."""

    def __init__(self, blob_unit: bool) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        basis = F.avg_pool2d(torch.randn(UNITS, 4, GRID, GRID, generator=gen), 3, 1, 1) * 3
        self.register_buffer("basis", basis)  # per unit, 4 smooth spatial patterns mixed by the latent
        self.blob_unit = blob_unit

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        fields = torch.einsum("nk,ukhw->nuhw", z[:, 4:8], self.basis).relu()
        if self.blob_unit:
            fields = torch.cat([blob(z), fields[:, 1:]], 1)
        return fields


def blob(z: torch.Tensor) -> torch.Tensor:
    """[N, 1, GRID, GRID]: a Gaussian bump at a place set by z[:, 1:3], on samples with z[:, 0] > BLOB_ABOVE."""
    ys = xs = torch.arange(GRID, dtype=torch.float32)
    cy, cx = (1 + 5 * torch.sigmoid(z[:, 1:3])).unbind(1)
    bump = torch.exp(
        -((ys[None, :, None] - cy[:, None, None]) ** 2 + (xs[None, None, :] - cx[:, None, None]) ** 2) / 1.5
    )
    return (bump * (z[:, :1, None] > BLOB_ABOVE)).unsqueeze(1)


class ToyGenerator(Generator):
    """Images: a ring whose radius follows z[:, 3], the units' texture, and the blob (from the ``units``
    layer when ``blob_unit``, else from a separate path no dissected layer sees)."""

    def __init__(self, blob_unit: bool = True, blobs: bool = True) -> None:
        super().__init__()
        self.spec = ModelSpec("toy", RES, 1, 8, 0, UNITS, UNITS)
        self.units = _Units(blob_unit)
        self.gain = nn.Parameter(torch.tensor(1.0))  # so the model has a device
        self.blob_unit, self.blobs = blob_unit, blobs

    def unit_layers(self) -> list[str]:
        return ["units"]

    def forward(self, z: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        a = self.units(z)
        up = F.interpolate(a, size=(RES, RES), mode="bilinear", align_corners=False)
        r = torch.linspace(-1, 1, RES)
        dist = (r[None, :, None] ** 2 + r[None, None, :] ** 2).sqrt()
        radius = 0.55 + 0.1 * torch.tanh(z[:, 3])[:, None, None]
        ring = torch.exp(-((dist - radius) ** 2) / 0.02)
        img = -1 + 1.6 * ring[:, None] + 0.05 * up[:, 1:].sum(1, keepdim=True) * self.gain
        if self.blobs:
            painted = (
                up[:, :1] if self.blob_unit else F.interpolate(blob(z), size=(RES, RES), mode="bilinear")
            )
            img = img + 4 * painted
        return img.clamp(-1, 1)


def pixel_features(x: torch.Tensor) -> np.ndarray:
    """2x average-pooled pixels: features in which a blob is far from every real image."""
    return F.avg_pool2d(x.float(), 2).flatten(1).double().numpy()


@torch.no_grad()
def real_features(n: int = 1024, seed: int = 99) -> np.ndarray:
    """The 'real' data: the toy's images without blobs."""
    g = ToyGenerator(blobs=False)
    z, _ = g.sample_inputs(n, seed=seed)
    return pixel_features(g(z))
