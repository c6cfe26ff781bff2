"""ResNet generator and discriminator of SNGAN (Miyato et al. 2018), with the projection discriminator of
Miyato & Koyama 2018 for class conditioning.

Generator at resolution R = 4 * 2**k: a linear map from z to a 4x4 feature map, k residual up-blocks
(conditional BN -> ReLU -> 2x nearest upsample -> conv1 3x3 -> conditional BN ``norm2`` -> ReLU -> conv2
3x3, plus a 1x1 skip), then BN -> ReLU -> 3x3 conv -> tanh. The units are each block's inner channels,
the outputs of ``blocks.i.norm2``: read only by conv2 (through a ReLU, which keeps a zero a zero), so they
can be ablated and removed exactly, unlike the block outputs, which feed the skip sum and the next
BatchNorm. Their widths live in ``spec.g_layer_widths``.

Discriminator: spectral normalisation on every weight; an "optimized" first block (conv before the
skip's pooling), k-1 more down-blocks to 4x4, one block at 4x4, ReLU, global sum pooling, then the
projection head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Discriminator, Generator, ModelSpec
from .conditioning import ConditionalBatchNorm2d, ProjectionHead
from .layers import MinibatchDiscrimination, spectral_norm


def num_up(resolution: int) -> int:
    k = int(math.log2(max(resolution // 4, 1)))
    if 4 * 2**k != resolution or k < 1:
        raise ValueError(f"this family needs a resolution of 4 * 2**k (8, 16, 32, 64, ...), got {resolution}")
    return k


def default_widths(spec: ModelSpec) -> tuple[int, ...]:
    """Width of up-block i (output and, unpruned, inner): g_width * 2**(k-1-i), halving as resolution doubles."""
    k = num_up(spec.resolution)
    return tuple(spec.g_width * 2 ** (k - 1 - i) for i in range(k))


class GResBlock(nn.Module):
    def __init__(self, in_ch: int, hidden: int, out_ch: int, num_classes: int) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_ch, num_classes)
        self.conv1 = nn.Conv2d(in_ch, hidden, 3, 1, 1)
        self.norm2 = ConditionalBatchNorm2d(hidden, num_classes)
        self.conv2 = nn.Conv2d(hidden, out_ch, 3, 1, 1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, class_id: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.norm1(x, class_id)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(self.norm2(self.conv1(h), class_id)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class SNGANGenerator(Generator):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        outs = default_widths(spec)  # block outputs keep the default widths: only inner widths are units
        hidden = spec.g_layer_widths or outs
        k = num_up(spec.resolution)
        if len(hidden) != k:
            raise ValueError(f"g_layer_widths needs {k} entries for {spec.resolution}px, got {len(hidden)}")
        self.stem_ch = outs[0]
        self.stem = nn.Linear(spec.z_dim, 16 * self.stem_ch)
        ins = (self.stem_ch, *outs[:-1])
        self.blocks = nn.ModuleList(
            GResBlock(i, h, o, spec.num_classes) for i, h, o in zip(ins, hidden, outs, strict=True)
        )
        self.out_norm = nn.BatchNorm2d(outs[-1])
        self.to_rgb = nn.Conv2d(outs[-1], spec.channels, 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def unit_layers(self) -> list[str]:
        return [f"blocks.{i}.norm2" for i in range(len(self.blocks))]

    def forward(self, z: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        h = self.stem(z).view(-1, self.stem_ch, 4, 4)
        for block in self.blocks:
            h = block(h, class_id)
        return torch.tanh(self.to_rgb(F.relu(self.out_norm(h))))


class DResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, down: bool, first: bool = False, sn: bool = True) -> None:
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, out_ch, 3, 1, 1), sn)
        self.conv2 = spectral_norm(nn.Conv2d(out_ch, out_ch, 3, 1, 1), sn)
        self.skip = spectral_norm(nn.Conv2d(in_ch, out_ch, 1), sn) if (in_ch != out_ch or down) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)  # the first block sees raw pixels
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.skip is not None:
            if self.first:  # "optimized" block: pool, then the 1x1 conv (cheaper, same function)
                s = self.skip(F.avg_pool2d(s, 2) if self.down else s)
            else:
                s = self.skip(s)
                s = F.avg_pool2d(s, 2) if self.down else s
        return h + s


class SNGANDiscriminator(Discriminator):
    """``forward(x, class_id, return_features=True)`` also returns the pooled features (feature matching).

    ``spectral_norm=False`` drops the normalisation (a plain ResNet critic, e.g. for WGAN-GP).
    """

    def __init__(
        self, spec: ModelSpec, minibatch_discrimination: bool = False, spectral_norm: bool = True
    ) -> None:
        super().__init__()
        k = num_up(spec.resolution)
        sn = spectral_norm
        widths = [spec.d_width * 2**i for i in range(k)] + [spec.d_width * 2 ** (k - 1)]
        blocks = [DResBlock(spec.channels, widths[0], down=True, first=True, sn=sn)]
        blocks += [DResBlock(widths[i - 1], widths[i], down=True, sn=sn) for i in range(1, k)]
        blocks.append(DResBlock(widths[k - 1], widths[k], down=False, sn=sn))  # at 4x4
        self.blocks = nn.Sequential(*blocks)
        feat = widths[-1]
        self.mbd = MinibatchDiscrimination(feat) if minibatch_discrimination else None
        self.head = ProjectionHead(
            self.mbd.out_features if self.mbd else feat, spec.num_classes, spectral_norm=sn
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight_orig if hasattr(m, "weight_orig") else m.weight)
                nn.init.zeros_(m.bias)

    def forward(
        self, x: torch.Tensor, class_id: torch.Tensor | None = None, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        logits = self.head(self.mbd(h) if self.mbd is not None else h, class_id)
        return (logits, h) if return_features else logits
