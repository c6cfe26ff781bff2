"""ResNet generator and discriminator of SNGAN (Miyato et al. 2018), with the projection discriminator of
Miyato & Koyama 2018 for class conditioning.

Generator at resolution R = 4 * 2**k: a linear map from z to a 4x4 feature map, k residual up-blocks
(conditional BN -> ReLU -> 2x nearest upsample -> conv1 3x3 -> conditional BN ``norm2`` -> ReLU -> conv2
3x3, plus a 1x1 skip), then BN -> ReLU -> 3x3 conv -> tanh. The units are each block's inner channels,
the outputs of ``blocks.i.norm2``: read only by conv2 (through a ReLU, which keeps a zero a zero), so they
can be ablated and removed exactly, unlike the block outputs, which feed the skip sum and the next
BatchNorm. Their widths live in ``spec.g_layer_widths``.

Discriminator: spectral normalisation on every weight; an "optimized" first block (conv before the
skip's pooling), more down-blocks, then blocks without downsampling, ReLU, global sum pooling, then the
projection head.

Channel layouts (``layout``): at 64 and 128 px the published ones, in units of ``g_width``/``d_width`` (the
papers' ch = 64 gives their 1024-channel G stem and D top): the 64 px model of Miyato & Koyama's code
(chainer ``sngan_projection``, ``snresnet_64``) and torch-mimicry's ``sngan_64``; the 128 px ImageNet model
(``snresnet_128``, mimicry's ``sngan_128``), including their D block whose first conv keeps its input
width. Other resolutions (8-32, 256, ...) keep this project's own rule (widths halve per doubling, D down to
4x4 plus one block there); at 32 px that is not the CIFAR model (constant 256/128 widths). Upsampling stays
nearest, as in the chainer original (mimicry uses bilinear).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Layout:
    """Channels per stage, in units of the base width (g_width for G, d_width for D)."""

    g_stem: int  # the 4x4 map the linear stem makes
    g_blocks: tuple[int, ...]  # each up-block's output (one block per doubling)
    d_down: tuple[int, ...]  # each downsampling block's output; the first is the optimized block
    d_flat: tuple[int, ...]  # blocks after the last downsampling, at the final resolution
    # A D block's conv1 keeps its input width (the published block: c1 in->in, c2 in->out) or goes straight
    # to its output width (this project's block at other resolutions; the optimized first block always does).
    d_hidden_is_input: bool = False


# Transcribed from the published models (see the module docstring); D at 64 px ends at 2x2, at 128 px at 4x4.
PUBLISHED: dict[int, Layout] = {
    64: Layout(16, (8, 4, 2, 1), d_down=(1, 2, 4, 8, 16), d_flat=(), d_hidden_is_input=True),
    128: Layout(16, (16, 8, 4, 2, 1), d_down=(1, 2, 4, 8, 16), d_flat=(16,), d_hidden_is_input=True),
}


def layout(resolution: int) -> Layout:
    """The published layout at 64/128 px; elsewhere widths halve as resolution doubles (G), double as it
    halves (D), down to 4x4 plus one block there."""
    k = num_up(resolution)
    if resolution in PUBLISHED:
        return PUBLISHED[resolution]
    halving = tuple(2 ** (k - 1 - i) for i in range(k))
    return Layout(halving[0], halving, tuple(2**i for i in range(k)), (2 ** (k - 1),))


def default_widths(spec: ModelSpec) -> tuple[int, ...]:
    """Width of up-block i (output and, unpruned, inner)."""
    return tuple(spec.g_width * m for m in layout(spec.resolution).g_blocks)


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
        self.stem_ch = spec.g_width * layout(spec.resolution).g_stem
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
    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        down: bool,
        first: bool = False,
        sn: bool = True,
        hidden_is_input: bool = False,
    ) -> None:
        super().__init__()
        self.down, self.first = down, first
        hidden = in_ch if hidden_is_input and not first else out_ch
        self.conv1 = spectral_norm(nn.Conv2d(in_ch, hidden, 3, 1, 1), sn)
        self.conv2 = spectral_norm(nn.Conv2d(hidden, out_ch, 3, 1, 1), sn)
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
        plan = layout(spec.resolution)
        sn = spectral_norm
        down = [spec.d_width * m for m in plan.d_down]
        flat = [spec.d_width * m for m in plan.d_flat]
        opts = {"sn": sn, "hidden_is_input": plan.d_hidden_is_input}
        blocks = [DResBlock(spec.channels, down[0], down=True, first=True, **opts)]
        blocks += [DResBlock(i, o, down=True, **opts) for i, o in itertools.pairwise(down)]
        blocks += [DResBlock(i, o, down=False, **opts) for i, o in itertools.pairwise([down[-1], *flat])]
        self.blocks = nn.Sequential(*blocks)
        feat = (flat or down)[-1]
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
