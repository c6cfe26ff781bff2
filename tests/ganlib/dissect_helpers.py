"""Builders for the dissection tests: a planted artifact unit, a pixel-space FID, non-trivial norms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganlib.pixels import to_model_range


@torch.no_grad()
def plant_blob(
    g: nn.Module, source: int = 0, unit: int = 3, strength: float = 3.0, only_above: float | None = None
) -> int:
    """Rewire DCGAN ``blocks.1`` unit ``unit`` to fire only at its 8x8 map's corner and paint a bright blob
    over the image's top-left 3x3 pixels; returns ``unit``.

    ``blocks.0`` unit ``source`` becomes a constant 1 (conv weights 0, CBN gain 0 / bias 1). A stride-2
    transposed conv whose 1-D kernel is (0, 1, 0, -1) maps a constant to a single corner impulse (inner
    outputs get two taps that cancel, the border output gets one). ``to_rgb`` turns the impulse into +1.

    With ``only_above``, the source is ReLU(4 (z_0 - only_above)) instead of 1, so only samples whose first
    latent exceeds ``only_above`` get a blob, the brighter the further above.
    """
    b0, b1 = g.blocks[0], g.blocks[1]
    b0.conv.weight[:, source] = 0
    if only_above is None:
        b0.norm.gain.weight[:, source] = 0
        b0.norm.bias.weight[:, source] = 1
    else:
        b0.conv.weight[0, source] = 4.0  # every 4x4 position reads 4 z_0
        b0.norm.bn.running_mean[source] = 0
        b0.norm.bn.running_var[source] = 1 - b0.norm.bn.eps
        b0.norm.gain.weight[:, source] = 1
        b0.norm.bias.weight[:, source] = -4.0 * only_above
    u = torch.tensor([0.0, 1.0, 0.0, -1.0])
    b1.conv.weight[source] = 0  # the constant feeds only the planted unit
    b1.conv.weight[:, unit] = 0
    b1.conv.weight[source, unit] = strength * torch.outer(u, u)
    b1.norm.bn.running_mean[unit] = 0
    b1.norm.bn.running_var[unit] = 1 - b1.norm.bn.eps
    b1.norm.gain.weight[:, unit] = 1
    b1.norm.bias.weight[:, unit] = 0
    g.to_rgb.weight[unit] = 3.0
    return unit


def pixel_features(x: torch.Tensor) -> np.ndarray:
    """2x average-pooled pixels (64 features at 16px)."""
    return F.avg_pool2d(x.float(), 2).flatten(1).double().numpy()


def real_images(split) -> torch.Tensor:
    return to_model_range(torch.from_numpy(np.asarray(split.images)))


def pixel_fid(split) -> Callable[[torch.Tensor], float]:
    """fid_fn(images) vs the real split on 2x average-pooled pixels (``pixel_features``).

    A stand-in feature extractor: ganlib.metrics' domain backbone (a digit classifier) barely reacts to a
    corner blob (its features ignore the always-dark border), which would hide the planted artifact.
    The Fréchet distance itself is ganlib.metrics'.
    """
    from ganlib.metrics.frechet import frechet_distance
    from ganlib.metrics.stats import FeatureStats

    ref = FeatureStats.from_features(pixel_features(real_images(split)), backbone="pixels-8x8")

    def fid(images: torch.Tensor) -> float:
        return frechet_distance(
            FeatureStats.from_features(pixel_features(images), backbone="pixels-8x8"), ref
        ).value

    return fid


def randomize_norms(g: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and per-class gains/biases (a fresh init would hide norm bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                if m.affine:
                    m.weight.copy_(1 + 0.3 * torch.randn(m.num_features, generator=gen))
                    m.bias.copy_(0.3 * torch.randn(m.num_features, generator=gen))
            elif isinstance(m, nn.Embedding):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
    return g.eval()
