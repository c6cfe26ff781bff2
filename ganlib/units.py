"""The generic half of GAN Dissection (Bau et al., ICLR 2019): what a generator's units do, whoever judges.

- ``record_units``: one pass over latents; the images, each unit's mean, its top-quantile level t_u
  (P(a_u > t_u) = 1 - quantile over all samples and positions) and each sample's mean activation per unit.
- ``mask_iou``: a second pass; each unit's activation, bilinearly upsampled and thresholded at t_u, against
  one or more sets of concept masks, summed over samples: IoU_u = |M_u & A| / |M_u | A|.
- ``ablation_sweep``: the generator with each unit zeroed in turn, batched so that many units share one
  forward pass (the latents are repeated once per unit and each replica has a different unit zeroed).

Judges (``ganlib.dissect``: the discriminator; ``ganlib.flaw_dissect``: the flaw classifier) supply the
concept masks and read the results. Call everything with the generator in eval mode (``eval_mode``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .prune import ablation_module, prunable_layers

T = TypeVar("T")
ScoreFn = Callable[[torch.Tensor, torch.Tensor | None], T]  # (images, class ids) -> any measurement


def default_layers(g: nn.Module) -> list[str]:
    """The middle layers (all but the first and last) of the prunable layers, or of ``unit_layers()``."""
    names = prunable_layers(g) or list(g.unit_layers())
    return names[1:-1] if len(names) >= 3 else names[-1:]


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Eval mode inside the block, the callers' modes restored after. Dissection needs running BatchNorm
    stats: in train mode a sample's output would depend on its batch."""
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


@contextmanager
def recording(g: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Captures each layer's latest output into the yielded dict."""
    acts: dict[str, torch.Tensor] = {}
    modules = dict(g.named_modules())
    missing = [layer for layer in layers if layer not in modules]
    if missing:
        raise ValueError(f"no layer(s) {missing} in {type(g).__name__}; unit layers: {list(g.unit_layers())}")

    def hook(name: str):
        def fn(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
            if not isinstance(out, torch.Tensor) or out.ndim != 4:
                raise ValueError(f"layer '{name}' must output a [N, C, H, W] tensor to be dissected")
            acts[name] = out.detach()

        return fn

    handles = [modules[layer].register_forward_hook(hook(layer)) for layer in layers]
    try:
        yield acts
    finally:
        for h in handles:
            h.remove()


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def kth_largest_level(values: torch.Tensor, quantile: float) -> torch.Tensor:
    """Per-row level t with a fraction (1 - quantile) of values above it (kthvalue: no size limit)."""
    n = values.shape[-1]
    k = min(max(math.ceil(quantile * n), 1), n)
    return values.kthvalue(k, dim=-1).values


# --- pass 1: unit statistics -----------------------------------------------------------------------------


@dataclass
class UnitRecord:
    images: torch.Tensor  # [N, C, H, W] on the CPU
    mean: dict[str, np.ndarray]  # per layer: each unit's mean activation
    threshold: dict[str, torch.Tensor]  # per layer: each unit's top-quantile level t_u
    sample_mean: dict[str, torch.Tensor]  # per layer: [N, units], each sample's spatial mean activation


@torch.no_grad()
def record_units(
    generator: nn.Module,
    layers: Sequence[str],
    z: torch.Tensor,
    y: torch.Tensor | None,
    *,
    quantile: float = 0.99,
    batch_size: int = 128,
    max_threshold_values: int = 32768,
    seed: int = 0,
) -> UnitRecord:
    """One pass over ``z``: images and per-unit statistics. The quantile levels are computed from a random
    subset of at most ``max_threshold_values`` values per unit (all of them when fewer)."""
    rng = torch.Generator().manual_seed(seed)
    n_batches = math.ceil(len(z) / batch_size)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    samples: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    per_sample: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    images = []
    with recording(generator, layers) as acts:
        for s in batches(len(z), batch_size):
            images.append(generator(z[s], y[s] if y is not None else None).float().cpu())
            for layer in layers:
                act = acts[layer].float()
                per_sample[layer].append(act.mean((2, 3)).cpu())
                a = act.transpose(0, 1).flatten(1).cpu()  # [C, B*h*w]
                sums[layer] = sums.get(layer, 0) + a.double().sum(1)
                counts[layer] = counts.get(layer, 0) + a.shape[1]
                keep = max(1, max_threshold_values // n_batches)
                if a.shape[1] > keep:
                    a = a[:, torch.randperm(a.shape[1], generator=rng)[:keep]]
                samples[layer].append(a)
    return UnitRecord(
        images=torch.cat(images),
        mean={layer: (sums[layer] / counts[layer]).numpy() for layer in layers},
        threshold={layer: kth_largest_level(torch.cat(samples[layer], 1), quantile) for layer in layers},
        sample_mean={layer: torch.cat(per_sample[layer]) for layer in layers},
    )


# --- pass 2: IoU with concept masks ----------------------------------------------------------------------


@torch.no_grad()
def mask_iou(
    generator: nn.Module,
    layers: Sequence[str],
    z: torch.Tensor,
    y: torch.Tensor | None,
    thresholds: dict[str, torch.Tensor],
    masks: Sequence[torch.Tensor],
    batch_size: int = 128,
) -> list[dict[str, np.ndarray]]:
    """For each mask set (bool ``[N, 1, H, W]``, one mask per latent of ``z``), each unit's IoU with it:
    ``result[m][layer][unit]``. One generator pass serves all mask sets."""
    device = z.device
    size = masks[0].shape[-2:]
    inter = [
        {layer: torch.zeros(len(thresholds[layer]), dtype=torch.float64) for layer in layers} for _ in masks
    ]
    area = {layer: torch.zeros(len(thresholds[layer]), dtype=torch.float64) for layer in layers}
    with recording(generator, layers) as acts:
        for s in batches(len(z), batch_size):
            generator(z[s], y[s] if y is not None else None)
            ms = [m[s].to(device) for m in masks]
            for layer in layers:
                t = thresholds[layer].to(device)
                a = acts[layer].float()
                cs = max(1, (1 << 24) // max(1, a.shape[0] * size[0] * size[1]))  # bound memory
                for c0 in range(0, a.shape[1], cs):
                    up = F.interpolate(a[:, c0 : c0 + cs], size=size, mode="bilinear", align_corners=False)
                    tc = t[c0 : c0 + cs][None, :, None, None]
                    # ">= t" (not "> t") so a unit with a plateau at its top level still has a mask; a unit
                    # whose level is 0 (mostly off) must be strictly positive.
                    unit_mask = torch.where(tc > 0, up >= tc, up > 0)
                    area[layer][c0 : c0 + cs] += unit_mask.sum((0, 2, 3)).double().cpu()
                    for i, m in enumerate(ms):
                        inter[i][layer][c0 : c0 + cs] += (unit_mask & m).sum((0, 2, 3)).double().cpu()
    out = []
    for i, m in enumerate(masks):
        total = float(m.sum())
        res = {}
        for layer in layers:
            union = area[layer] + total - inter[i][layer]
            res[layer] = torch.where(
                union > 0, inter[i][layer] / union.clamp_min(1), torch.zeros_like(union)
            ).numpy()
        out.append(res)
    return out


# --- ablation --------------------------------------------------------------------------------------------


class _ReplicaMask:
    """Forward hook for a pass of ``len(group)`` replicas x ``per_replica`` latents (replica-major rows):
    replica j has unit ``group[j]`` zeroed when that unit belongs to this hook's layer."""

    def __init__(self, group: Sequence[tuple[str, int]], layer: str) -> None:
        self.replicas = len(group)
        self.units = [(j, u) for j, (lay, u) in enumerate(group) if lay == layer]
        self.per_replica = 0
        self._masks: dict[tuple[int, int], torch.Tensor] = {}

    def __call__(self, _m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
        key = (self.per_replica, out.ndim)
        if key not in self._masks:  # one multiply per pass; the mask is built once per chunk size
            keep = torch.ones(self.replicas, out.shape[1], dtype=out.dtype, device=out.device)
            for j, u in self.units:
                keep[j, u] = 0
            keep = keep.repeat_interleave(self.per_replica, dim=0)
            self._masks[key] = keep.reshape(*keep.shape, *[1] * (out.ndim - 2))
        return out * self._masks[key]


@torch.no_grad()
def ablation_sweep(
    generator: nn.Module,
    units: Sequence[tuple[str, int]],
    z: torch.Tensor,
    class_id: torch.Tensor | None = None,
    *,
    score_fn: ScoreFn | None = None,
    batch_size: int = 128,
    units_per_pass: int = 8,
) -> list[T | None]:
    """``score_fn(images, class_id)`` of the generator with each unit in ``units`` ablated in turn (where
    ``ganlib.prune.ablate`` would), over latents ``z``; None for every unit without a ``score_fn``.

    Batched: one forward pass carries ``units_per_pass`` units x ``batch_size // units_per_pass`` latents.
    Generated images are kept only for the units of the current group, and only with a ``score_fn``.
    """
    n, g_size = len(z), max(1, min(units_per_pass, len(units)))
    chunk = max(1, batch_size // g_size)
    modules = dict(generator.named_modules())
    results: list[T | None] = []
    for gstart in range(0, len(units), g_size):
        group = list(units[gstart : gstart + g_size])
        hooks = {layer: _ReplicaMask(group, layer) for layer in {lay for lay, _ in group}}
        handles = [
            modules[ablation_module(generator, layer)].register_forward_hook(h) for layer, h in hooks.items()
        ]
        images: list[list[torch.Tensor]] = [[] for _ in group]
        try:
            for s in batches(n, chunk):
                b = s.stop - s.start
                for h in hooks.values():
                    h.per_replica = b
                zz = z[s].repeat(len(group), 1)
                yy = class_id[s].repeat(len(group)) if class_id is not None else None
                x = generator(zz, yy)
                if score_fn is not None:
                    for j in range(len(group)):
                        images[j].append(x[j * b : (j + 1) * b])
        finally:
            for h in handles:
                h.remove()
        for j in range(len(group)):
            results.append(score_fn(torch.cat(images[j]), class_id) if score_fn is not None else None)
    return results
