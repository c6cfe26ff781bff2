"""What every generator and discriminator in ganlib promises.

Generator: ``forward(z[N, z_dim], class_id[N] | None) -> images[N, C, H, W]`` in [-1, 1], plus the
attributes in ``ModelSpec`` so a checkpoint can rebuild it, and ``units()`` naming the layers whose output
channels dissection may study and pruning may remove.
Discriminator: ``forward(x, class_id | None) -> logits[N]`` (one realism score per image).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a generator from a checkpoint (stored as plain types)."""

    family: str
    resolution: int
    channels: int
    z_dim: int
    num_classes: int  # 0 = unconditional
    g_width: int
    d_width: int
    # Per-block unit widths (DCGAN: block outputs; SNGAN: residual blocks' inner widths), as ganlib.prune
    # leaves them; None = the family's default widths.
    g_layer_widths: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["g_layer_widths"] = list(self.g_layer_widths) if self.g_layer_widths else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        if d.get("g_layer_widths"):
            d["g_layer_widths"] = tuple(int(w) for w in d["g_layer_widths"])
        return cls(**d)


class Generator(nn.Module):
    spec: ModelSpec

    @property
    def z_dim(self) -> int:
        return self.spec.z_dim

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    def sample_inputs(
        self, n: int, seed: int | None = None, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Latents (and balanced class ids for conditional models), reproducible by seed."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.z_dim, generator=gen).to(device)
        y = None
        if self.num_classes:
            y = (torch.arange(n) % self.num_classes).to(device)
        return z, y

    def forward(self, z: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


class Discriminator(nn.Module):
    def forward(self, x: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError
