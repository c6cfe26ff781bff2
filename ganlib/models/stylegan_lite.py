"""A small style-based generator (Karras et al. 2019/2020), sized to train at 32x32 on a CPU.

- Mapping network: normalised z (and, when conditional, a normalised class embedding: the styles then
  act as class-dependent FiLM on every layer) -> 4 equalized-lr FC layers -> w.
- Synthesis: a learned 4x4 constant, then per resolution (upsample ->) modulated 3x3 convs with weight
  demodulation (StyleGAN2), per-layer noise inputs with learned strength, and a final modulated 1x1 to RGB.
- Style mixing during training: a fraction of samples switch to a second w at a random layer.
- Truncation: ``w_avg`` tracks the running mean of w during training; ``truncation_psi < 1`` pulls w to it.

Export-friendly: plain convs only (modulation scales activations instead of building per-sample weights,
so no grouped conv with a batch-sized group count), and no hidden randomness in eval mode: with
``noise=None`` an eval-mode generator uses fixed registered noise buffers, so ``forward(z, class_id)``
is deterministic and traces to the same graph ONNX runs.

Units for dissection/pruning: the outputs of ``synthesis.layers.{i}`` (one per modulated 3x3 conv); their
widths live in ``spec.g_layer_widths`` (1 + 2k entries at resolution 4 * 2**k).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Generator, ModelSpec
from .sngan import num_up

MAPPING_LAYERS = 4
MAPPING_LR_MUL = 0.01  # the mapping net learns 100x slower, as in StyleGAN
W_AVG_BETA = 0.995


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * math.sqrt(2.0)  # gain keeps the activation variance at 1


def default_widths(spec: ModelSpec) -> tuple[int, ...]:
    """Widths of the 1 + 2k synthesis layers: g_width * 2**(k-1-j) at resolution 4 * 2**j (>= g_width)."""
    k = num_up(spec.resolution)
    per_res = [spec.g_width * 2 ** max(k - 1 - j, 0) for j in range(k + 1)]
    return (per_res[0], *(w for j in range(1, k + 1) for w in (per_res[j], per_res[j])))


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weights stored at unit scale, scaled at run time."""

    def __init__(self, in_f: int, out_f: int, bias_init: float = 0.0, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_f, in_f) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_f,), bias_init / lr_mul))
        self.w_gain, self.lr_mul = lr_mul / math.sqrt(in_f), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.w_gain, self.bias * self.lr_mul)


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(num_classes, w_dim) if num_classes else None
        dims = [z_dim + (w_dim if num_classes else 0)] + [w_dim] * MAPPING_LAYERS
        self.fcs = nn.ModuleList(
            EqualLinear(a, b, lr_mul=MAPPING_LR_MUL) for a, b in itertools.pairwise(dims)
        )

    def forward(self, z: torch.Tensor, class_id: torch.Tensor | None) -> torch.Tensor:
        x = _normalize_2nd_moment(z)
        if self.embed is not None:
            if class_id is None:
                raise ValueError("this generator is class-conditional: pass class_id")
            x = torch.cat([x, _normalize_2nd_moment(self.embed(class_id))], dim=1)
        for fc in self.fcs:
            x = _lrelu(fc(x))
        return x


class ModulatedConv(nn.Module):
    """conv(x * s) * d with s = affine(w) per input channel and d the demodulation per output channel.

    Equal to StyleGAN2's per-sample weight w'_oi = s_i w_oi / sqrt(sum_ik (s_i w_oik)^2), but with one
    shared weight: the export-friendly ("non-fused") form.
    """

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, kernel: int, demodulate: bool = True) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.w_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.demodulate, self.padding = demodulate, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor, up: bool = False) -> torch.Tensor:
        s = self.affine(w)  # [N, in]
        weight = self.weight * self.w_gain
        x = x * s[:, :, None, None]
        if up:  # upsampling is linear per channel, so modulating before it is the same
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            d = (s.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # [N, out]
            x = x * d[:, :, None, None]
        return x


class StyleLayer(nn.Module):
    """Modulated 3x3 conv -> + noise * strength -> + bias -> lrelu. Its output channels are the units."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: bool, index: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, out_ch, w_dim, 3)
        self.up, self.resolution = up, resolution
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        gen = torch.Generator().manual_seed(index)  # fixed eval-mode noise, identical in every copy
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution, generator=gen))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x, w, up=self.up)
        if noise is None:
            if self.training:
                noise = torch.randn(
                    x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype
                )
            else:
                noise = self.noise_const
        x = x + noise * self.noise_strength
        return _lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, in_ch: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_ch, channels, w_dim, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class Synthesis(nn.Module):
    def __init__(self, spec: ModelSpec, w_dim: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        k = num_up(spec.resolution)
        if len(widths) != 1 + 2 * k:
            raise ValueError(
                f"g_layer_widths needs {1 + 2 * k} entries for {spec.resolution}px, got {len(widths)}"
            )
        self.const_ch = default_widths(spec)[0]  # the constant is not a unit: it keeps the default width
        self.const = nn.Parameter(torch.randn(1, self.const_ch, 4, 4))
        layers, in_ch = [], self.const_ch
        for i, out_ch in enumerate(widths):
            j = (i + 1) // 2  # resolution index: layer 0 at 4x4, then two layers per doubling
            layers.append(StyleLayer(in_ch, out_ch, w_dim, 4 * 2**j, up=i % 2 == 1, index=i))
            in_ch = out_ch
        self.layers = nn.ModuleList(layers)
        self.to_rgb = ToRGB(in_ch, spec.channels, w_dim)

    @property
    def num_ws(self) -> int:
        return len(self.layers) + 1

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i], None if noise is None else noise[i])
        return self.to_rgb(x, ws[:, -1])


class StyleGANLiteGenerator(Generator):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        self.w_dim = spec.z_dim
        self.mapping = MappingNetwork(spec.z_dim, self.w_dim, spec.num_classes)
        self.synthesis = Synthesis(spec, self.w_dim, spec.g_layer_widths or default_widths(spec))
        self.register_buffer("w_avg", torch.zeros(self.w_dim))
        self.mixing_prob = 0.9  # training only; the trainer sets it from model.style_mixing

    def unit_layers(self) -> list[str]:
        return [f"synthesis.layers.{i}" for i in range(len(self.synthesis.layers))]

    def noise_shapes(self, n: int) -> list[tuple[int, ...]]:
        """Shapes of the ``noise`` inputs: one [n, 1, H, W] map per synthesis layer."""
        return [(n, 1, layer.resolution, layer.resolution) for layer in self.synthesis.layers]

    def forward(
        self,
        z: torch.Tensor,
        class_id: torch.Tensor | None = None,
        noise: list[torch.Tensor] | None = None,
        truncation_psi: float = 1.0,
    ) -> torch.Tensor:
        num_ws = self.synthesis.num_ws
        w = self.mapping(z, class_id)
        if self.training:
            # In fp32 even under autocast (w may be bf16).
            self.w_avg.copy_(self.w_avg.lerp(w.detach().float().mean(0), 1.0 - W_AVG_BETA))
        ws = w.unsqueeze(1).expand(-1, num_ws, -1)
        if self.training and self.mixing_prob > 0:
            # Each sample, with probability mixing_prob, uses a second latent from a random layer on.
            w2 = self.mapping(torch.randn_like(z), class_id)
            cutoff = torch.randint(1, num_ws, (z.shape[0], 1), device=z.device)
            mixed = torch.rand(z.shape[0], 1, device=z.device) < self.mixing_prob
            cutoff = torch.where(mixed, cutoff, torch.full_like(cutoff, num_ws))
            layer = torch.arange(num_ws, device=z.device)[None, :]
            ws = torch.where((layer >= cutoff)[:, :, None], w2.unsqueeze(1), ws)
        if truncation_psi != 1.0:
            ws = self.w_avg + truncation_psi * (ws - self.w_avg)
        return torch.tanh(self.synthesis(ws, noise))
