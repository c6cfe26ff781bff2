"""Class conditioning: conditional batch norm in G (de Vries et al. / Miyato & Koyama) and a projection
discriminator head (Miyato & Koyama 2018)."""

from __future__ import annotations

import torch
from torch import nn


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine params, then a per-class gain and bias (FiLM from an embedding).

    Unconditional (num_classes == 0) it is a plain affine BatchNorm, so one code path serves both.
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm2d(channels, affine=num_classes == 0)
        if num_classes:
            self.gain = nn.Embedding(num_classes, channels)
            self.bias = nn.Embedding(num_classes, channels)
            nn.init.ones_(self.gain.weight)
            nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        out = self.bn(x)
        if not self.num_classes:
            return out
        if class_id is None:
            raise ValueError("this generator is class-conditional: pass class_id")
        g = self.gain(class_id)[:, :, None, None]
        b = self.bias(class_id)[:, :, None, None]
        return out * g + b


class ProjectionHead(nn.Module):
    """logit = linear(h) + <embed(y), h>: the projection discriminator's output layer."""

    def __init__(self, features: int, num_classes: int, spectral_norm: bool = False) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
        self.linear = sn(nn.Linear(features, 1))
        self.embed = None
        if num_classes:
            # nn.Embedding's default N(0, 1) makes <embed(y), h> dwarf the linear term over hundreds of
            # features, and D wins at once; a Xavier-scaled start keeps the two terms comparable.
            embed = nn.Embedding(num_classes, features)
            nn.init.xavier_uniform_(embed.weight)
            self.embed = sn(embed)

    def forward(self, h: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if class_id is None:
                raise ValueError("this discriminator is class-conditional: pass class_id")
            out = out + (self.embed(class_id) * h).sum(1)
        return out
