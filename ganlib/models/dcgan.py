"""DCGAN (Radford et al. 2016): fractionally-strided convs, BatchNorm, ReLU/tanh in G, LeakyReLU in D.

Generator layout at resolution R = 4 * 2**k: a 4x4 projection block, then k upsampling blocks; the last
block maps to image channels with tanh. Blocks ``block0 .. block{k-1}`` (all but the output) are the units
dissection studies and pruning can remove; their widths live in ``spec.g_layer_widths``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Discriminator, Generator, ModelSpec
from .conditioning import ConditionalBatchNorm2d, ProjectionHead
from .layers import MinibatchDiscrimination
from .layers import spectral_norm as sn


def _num_up(resolution: int) -> int:
    k = int(math.log2(resolution // 4))
    if 4 * 2**k != resolution or k < 1:
        raise ValueError(f"DCGAN needs a resolution of 4 * 2**k (8, 16, 32, 64, ...), got {resolution}")
    return k


def default_widths(spec: ModelSpec) -> tuple[int, ...]:
    """Width of block i's output: g_width * 2**(k-1-i), halving as resolution doubles."""
    k = _num_up(spec.resolution)
    return tuple(spec.g_width * 2 ** (k - 1 - i) for i in range(k))


class GBlock(nn.Module):
    """conv (transposed) -> conditional BN -> ReLU; the unit dissection and pruning act on."""

    def __init__(self, conv: nn.Module, out_ch: int, num_classes: int) -> None:
        super().__init__()
        self.conv = conv
        self.norm = ConditionalBatchNorm2d(out_ch, num_classes)
        self.act = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor, class_id: torch.Tensor | None) -> torch.Tensor:
        return self.act(self.norm(self.conv(x), class_id))


class DCGANGenerator(Generator):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        widths = spec.g_layer_widths or default_widths(spec)
        k = _num_up(spec.resolution)
        if len(widths) != k:
            raise ValueError(f"g_layer_widths needs {k} entries for {spec.resolution}px, got {len(widths)}")
        self.blocks = nn.ModuleList()
        # 1x1 latent -> 4x4
        self.blocks.append(
            GBlock(
                nn.ConvTranspose2d(spec.z_dim, widths[0], 4, 1, 0, bias=False), widths[0], spec.num_classes
            )
        )
        for i in range(1, k):
            conv = nn.ConvTranspose2d(widths[i - 1], widths[i], 4, 2, 1, bias=False)
            self.blocks.append(GBlock(conv, widths[i], spec.num_classes))
        self.to_rgb = nn.ConvTranspose2d(widths[-1], spec.channels, 4, 2, 1)
        self.apply(_dcgan_init)

    def unit_layers(self) -> list[str]:
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def forward(self, z: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        h = z[:, :, None, None]
        for block in self.blocks:
            h = block(h, class_id)
        return torch.tanh(self.to_rgb(h))


class DCGANDiscriminator(Discriminator):
    """Strided convs + BatchNorm + LeakyReLU down to 4x4, then (optional minibatch discrimination and) the
    projection head. ``return_features=True`` also returns the flattened 4x4 features (feature matching).

    ``spectral_norm=True`` gives SNGAN's "standard CNN" D instead: spectral norm on every weight, no BatchNorm.
    """

    def __init__(
        self, spec: ModelSpec, minibatch_discrimination: bool = False, spectral_norm: bool = False
    ) -> None:
        super().__init__()
        k = _num_up(spec.resolution)
        layers: list[nn.Module] = []
        ch_in, ch = spec.channels, spec.d_width
        for i in range(k):
            layers.append(sn(nn.Conv2d(ch_in, ch, 4, 2, 1, bias=i == 0 or spectral_norm), spectral_norm))
            if i > 0 and not spectral_norm:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.LeakyReLU(0.2))
            ch_in, ch = ch, ch * 2
        self.features = nn.Sequential(*layers)  # -> [N, ch_in, 4, 4]
        self.mbd = MinibatchDiscrimination(ch_in * 16) if minibatch_discrimination else None
        feat = self.mbd.out_features if self.mbd else ch_in * 16
        self.head = ProjectionHead(feat, spec.num_classes, spectral_norm=spectral_norm)
        self.apply(_dcgan_init)

    def forward(
        self, x: torch.Tensor, class_id: torch.Tensor | None = None, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x).flatten(1)
        logits = self.head(self.mbd(h) if self.mbd is not None else h, class_id)
        return (logits, h) if return_features else logits


def _dcgan_init(m: nn.Module) -> None:
    # N(0, 0.02) as in the paper; BN gains N(1, 0.02).
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(getattr(m, "weight_orig", m.weight), 0.0, 0.02)  # weight_orig: under spectral norm
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d) and m.affine:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
