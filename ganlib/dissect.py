"""GAN Dissection (Bau et al., ICLR 2019), for one job: find the generator units that cause artifacts,
prove it by intervention, and hand them to ``ganlib.prune``.

1. **Unit statistics.** Record the chosen layers' activations over ``n_samples`` generated images; per unit the
   mean and the top-quantile threshold t_u with P(a_u > t_u) = 1 - quantile over all samples and positions
   (Network/GAN Dissection's definition).
2. **Artifact maps without labels.** The trained discriminator says where an image looks fake: per pixel,
   how much its realism logit would rise if that pixel (``"gradient"``: first-order, one backward pass) or
   patch (``"occlusion"``: measured, one D pass per patch) were replaced by a neutral fill (the image's
   median colour). Thresholded at a top quantile, that is the "artifact" concept mask.
3. **Unit-concept IoU.** Each unit's activation, bilinearly upsampled and thresholded at t_u, against the
   artifact mask, summed over all samples: IoU_u = |M_u & A| / |M_u | A|.
4. **Intervention.** The ``candidates`` units with the highest IoU are zeroed (``ganlib.prune.ablate``) over
   the same latents; the change in mean D logit (realism) and in FID (``fid_fn``) is measured, and units are
   ranked by that measured effect, not by IoU. Many units share one forward pass: the latents are repeated
   once per unit and each replica has a different unit zeroed, so no model is copied.

``fid_fn(images[N, C, H, W] in [-1, 1]) -> float`` is supplied by the caller (built from ``ganlib.metrics``),
so this module does not depend on a particular FID backbone; ``fid_label`` names it in the report.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .pixels import to_uint8
from .prune import Units, ablate, prunable_layers

FidFn = Callable[[torch.Tensor], float]
ArtifactMethod = Literal["gradient", "occlusion"]


# --- report ------------------------------------------------------------------------------------------------


@dataclass
class LayerStats:
    """Per-unit statistics of one layer (arrays of length = number of units)."""

    layer: str
    mean: np.ndarray  # mean activation
    threshold: np.ndarray  # top-quantile level t_u
    iou: np.ndarray  # IoU of the thresholded, upsampled activation with the artifact mask
    prunable: bool = True  # ganlib.prune can remove this layer's units exactly


@dataclass
class UnitEffect:
    """One ablation-tested unit. Deltas are ablated minus original over the same latents."""

    layer: str
    unit: int
    iou: float
    realism_delta: float  # mean D logit change; > 0: images look more real without the unit
    fid_delta: float | None  # FID change; < 0: better without the unit (None: no fid_fn)

    @property
    def effect(self) -> float:
        """Improvement from removing the unit (higher is better): -ΔFID when measured, else Δrealism."""
        return -self.fid_delta if self.fid_delta is not None else self.realism_delta


@dataclass
class DissectionReport:
    layers: dict[str, LayerStats]
    units: list[UnitEffect]  # the ablation-tested candidates, best (largest effect) first
    base_realism: float  # mean D logit of the unablated samples
    base_fid: float | None
    n_samples: int
    seed: int
    quantile: float
    artifact_method: str
    artifact_threshold: float
    fid_label: str = "fid"
    extra: dict[str, Any] = field(default_factory=dict)

    def select(
        self, max_remove: int = 8, min_effect: float = 0.0, prunable_only: bool = True
    ) -> dict[str, list[int]]:
        """Up to ``max_remove`` units, best first, whose ablation improved things by more than ``min_effect``
        (FID points when FID was measured, else D logit), as {layer: sorted unit indices}. Never a whole
        layer; with ``prunable_only``, only units ``ganlib.prune.prune_units`` can remove exactly."""
        chosen: dict[str, list[int]] = {}
        for u in self.units:
            if sum(map(len, chosen.values())) >= max_remove:
                break
            st = self.layers[u.layer]
            if prunable_only and not st.prunable:
                continue
            if u.effect > min_effect and len(chosen.get(u.layer, [])) < len(st.mean) - 1:
                chosen.setdefault(u.layer, []).append(u.unit)
        return {layer: sorted(us) for layer, us in chosen.items()}

    def to_markdown(self, max_rows: int = 20, selected: Mapping[str, Sequence[int]] | None = None) -> str:
        fid = f"{self.fid_label} {self.base_fid:.3f}" if self.base_fid is not None else "FID not measured"
        lines = [
            f"GAN dissection of {', '.join(self.layers)} over {self.n_samples} samples (seed {self.seed}); "
            f"artifact map: D {self.artifact_method}; unit threshold: {self.quantile} quantile.",
            "",
            f"Before ablation: {fid}, mean D logit {self.base_realism:.4f}. Ranked by measured effect of ablation.",
            "",
            f"| rank | layer | unit | IoU | Δ {self.fid_label} | Δ realism | removed |",
            "|---:|---|---:|---:|---:|---:|:---:|",
        ]
        fixed = [layer for layer, st in self.layers.items() if not st.prunable]
        if fixed:
            lines[1:1] = ["", f"Not prunable exactly (ablation only): {', '.join(fixed)}."]
        sel = {layer: set(us) for layer, us in (selected or {}).items()}
        for rank, u in enumerate(self.units[:max_rows], 1):
            dfid = f"{u.fid_delta:+.3f}" if u.fid_delta is not None else "n/a"
            mark = "yes" if u.unit in sel.get(u.layer, ()) else ""
            lines.append(
                f"| {rank} | {u.layer} | {u.unit} | {u.iou:.4f} | {dfid} | {u.realism_delta:+.4f} | {mark} |"
            )
        if len(self.units) > max_rows:
            lines.append(f"\n({len(self.units) - max_rows} more tested units not shown)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (JSON/metadata friendly)."""
        return {
            "layers": list(self.layers),
            "n_samples": self.n_samples,
            "seed": self.seed,
            "quantile": self.quantile,
            "artifact_method": self.artifact_method,
            "artifact_threshold": self.artifact_threshold,
            "fid_label": self.fid_label,
            "base_fid": self.base_fid,
            "base_realism": self.base_realism,
            "units": [
                {
                    "layer": u.layer,
                    "unit": u.unit,
                    "iou": u.iou,
                    "fid_delta": u.fid_delta,
                    "realism_delta": u.realism_delta,
                }
                for u in self.units
            ],
        }


# --- helpers ----------------------------------------------------------------------------------------------


def default_layers(g: nn.Module) -> list[str]:
    """The middle layers (all but the first and last) of the prunable layers, or of ``unit_layers()``."""
    names = prunable_layers(g) or list(g.unit_layers())
    return names[1:-1] if len(names) >= 3 else names[-1:]


@contextmanager
def _eval(*modules: nn.Module) -> Iterator[None]:
    # Dissection needs running BatchNorm stats: in train mode a sample's output would depend on its batch.
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


@contextmanager
def _record(g: nn.Module, layers: Sequence[str]) -> Iterator[dict[str, torch.Tensor]]:
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


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _realism(d: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return d(x, y).float().reshape(-1)


def _kth_largest_level(values: torch.Tensor, quantile: float) -> torch.Tensor:
    """Per-row level t with a fraction (1 - quantile) of values above it (kthvalue: no size limit)."""
    n = values.shape[-1]
    k = min(max(math.ceil(quantile * n), 1), n)
    return values.kthvalue(k, dim=-1).values


# --- artifact maps ----------------------------------------------------------------------------------------


def artifact_maps(
    discriminator: nn.Module,
    images: torch.Tensor,
    class_id: torch.Tensor | None = None,
    *,
    method: ArtifactMethod = "gradient",
    patch: int | None = None,
    batch_size: int = 128,
) -> torch.Tensor:
    """``[N, 1, H, W]`` >= 0: how much D's logit would rise if each pixel were replaced by a neutral fill.

    ``"gradient"``: sum_c dD/dx_c * (fill_c - x_c) (first-order), box-smoothed over ``patch`` pixels.
    ``"occlusion"``: each ``patch`` x ``patch`` square (stride patch/2) is filled and D re-scored; a pixel
    gets the mean rise over the squares that cover it. 0 where the content helps realism.
    """
    n, _, h, w = images.shape
    fill = images.flatten(2).median(dim=2).values[:, :, None, None]  # the image's own background colour
    if method == "gradient":
        k = patch or 2 * (h // 16) + 1
        k += 1 - k % 2  # odd, so the smoothed map keeps its size
        out = []
        for s in _batches(n, batch_size):
            x = images[s].detach().clone().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(
                    _realism(discriminator, x, None if class_id is None else class_id[s]).sum(), x
                )
            gain = (grad * (fill[s] - x.detach())).sum(1, keepdim=True)
            out.append(F.avg_pool2d(gain, k, stride=1, padding=k // 2, count_include_pad=False))
        return torch.cat(out).clamp_min(0)
    if method == "occlusion":
        p = patch or max(2, h // 4)
        stride = max(1, p // 2)
        starts = [
            (i, j) for i in range(0, max(h - p, 0) + 1, stride) for j in range(0, max(w - p, 0) + 1, stride)
        ]
        total = torch.zeros(n, 1, h, w, device=images.device)
        cover = torch.zeros(1, 1, h, w, device=images.device)
        with torch.no_grad():
            base = torch.cat(
                [
                    _realism(discriminator, images[s], None if class_id is None else class_id[s])
                    for s in _batches(n, batch_size)
                ]
            )
            for i, j in starts:
                cover[..., i : i + p, j : j + p] += 1
                for s in _batches(n, batch_size):
                    x = images[s].clone()
                    x[..., i : i + p, j : j + p] = fill[s]
                    gain = _realism(discriminator, x, None if class_id is None else class_id[s]) - base[s]
                    total[s, :, i : i + p, j : j + p] += gain[:, None, None, None]
        return (total / cover.clamp_min(1)).clamp_min(0)
    raise ValueError(f"artifact method must be 'gradient' or 'occlusion', got {method!r}")


# --- intervention -----------------------------------------------------------------------------------------


class _ReplicaMask:
    """Forward hook for a pass of ``len(group)`` replicas x ``per_replica`` latents (replica-major rows):
    replica j has unit ``group[j]`` zeroed when that unit belongs to this layer."""

    def __init__(self, group: Sequence[tuple[str, int]], layer: str) -> None:
        self.replicas = len(group)
        self.units = [(j, u) for j, (lay, u) in enumerate(group) if lay == layer]
        self.per_replica = 0
        self._masks: dict[int, torch.Tensor] = {}

    def __call__(self, _m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
        b = self.per_replica
        if b not in self._masks:  # one multiply per pass; the mask is built once per chunk size
            keep = torch.ones(self.replicas, out.shape[1], dtype=out.dtype, device=out.device)
            for j, u in self.units:
                keep[j, u] = 0
            self._masks[b] = keep.repeat_interleave(b, dim=0)[:, :, None, None]
        return out * self._masks[b]


@torch.no_grad()
def ablation_sweep(
    generator: nn.Module,
    discriminator: nn.Module | None,
    units: Sequence[tuple[str, int]],
    z: torch.Tensor,
    class_id: torch.Tensor | None = None,
    *,
    fid_fn: FidFn | None = None,
    batch_size: int = 128,
    units_per_pass: int = 8,
) -> list[tuple[float | None, float | None]]:
    """(mean D logit, FID) of the generator with each unit in ``units`` zeroed in turn, over latents ``z``.

    Batched: one forward pass carries ``units_per_pass`` units x ``batch_size // units_per_pass`` latents
    (each latent repeated once per unit, a different unit zeroed in each replica). Generated images are kept
    only for the units of the current group, and only when ``fid_fn`` is given. Call in eval mode.
    """
    n, g_size = len(z), max(1, min(units_per_pass, len(units)))
    chunk = max(1, batch_size // g_size)
    modules = dict(generator.named_modules())
    results: list[tuple[float | None, float | None]] = []
    for gstart in range(0, len(units), g_size):
        group = list(units[gstart : gstart + g_size])
        hooks = {layer: _ReplicaMask(group, layer) for layer in {lay for lay, _ in group}}
        handles = [modules[layer].register_forward_hook(h) for layer, h in hooks.items()]
        realism = torch.zeros(len(group), dtype=torch.float64)
        images: list[list[torch.Tensor]] = [[] for _ in group]
        try:
            for s in _batches(n, chunk):
                b = s.stop - s.start
                for h in hooks.values():
                    h.per_replica = b
                zz = z[s].repeat(len(group), 1)
                yy = class_id[s].repeat(len(group)) if class_id is not None else None
                x = generator(zz, yy)
                if discriminator is not None:
                    realism += _realism(discriminator, x, yy).double().view(len(group), b).sum(1).cpu()
                if fid_fn is not None:
                    for j in range(len(group)):
                        images[j].append(x[j * b : (j + 1) * b].cpu())
        finally:
            for h in handles:
                h.remove()
        for j in range(len(group)):
            fid = float(fid_fn(torch.cat(images[j]))) if fid_fn is not None else None
            results.append((float(realism[j]) / n if discriminator is not None else None, fid))
    return results


# --- dissection -------------------------------------------------------------------------------------------


def _unit_stats_and_iou(
    generator: nn.Module,
    discriminator: nn.Module,
    layers: list[str],
    z: torch.Tensor,
    y: torch.Tensor | None,
    quantile: float,
    artifact_method: ArtifactMethod,
    artifact_quantile: float,
    batch_size: int,
    max_threshold_values: int,
    keep_images: bool,
    seed: int,
) -> tuple[dict[str, LayerStats], float, float, torch.Tensor | None]:
    """Passes 1 and 2 of ``dissect`` (models already in eval mode): per-layer stats, the artifact level,
    the mean D logit, and the generated images when ``keep_images``."""
    n_samples, device = len(z), z.device
    rng = torch.Generator().manual_seed(seed)
    n_batches = math.ceil(n_samples / batch_size)
    with _record(generator, layers) as acts:
        # Pass 1: images, D realism, artifact maps; activation means and a bounded sample for the quantiles.
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        samples: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
        maps, base_images, realism = [], [], []
        for s in _batches(n_samples, batch_size):
            yy = y[s] if y is not None else None
            with torch.no_grad():
                x = generator(z[s], yy)
                realism.append(_realism(discriminator, x, yy).double().cpu())
            maps.append(
                artifact_maps(discriminator, x, yy, method=artifact_method, batch_size=batch_size).cpu()
            )
            if keep_images:
                base_images.append(x.cpu())
            for layer in layers:
                a = acts[layer].float().transpose(0, 1).flatten(1).cpu()  # [C, B*h*w]
                sums[layer] = sums.get(layer, 0) + a.double().sum(1)
                counts[layer] = counts.get(layer, 0) + a.shape[1]
                keep = max(1, max_threshold_values // n_batches)
                if a.shape[1] > keep:
                    a = a[:, torch.randperm(a.shape[1], generator=rng)[:keep]]
                samples[layer].append(a)
        thresholds = {layer: _kth_largest_level(torch.cat(samples[layer], 1), quantile) for layer in layers}
        art = torch.cat(maps)
        art_level = float(_kth_largest_level(art.flatten(), artifact_quantile))
        art_mask = (art >= art_level) & (art > 0)
        art_area = float(art_mask.sum())

        # Pass 2: IoU of each unit's upsampled, thresholded activation with the artifact mask.
        inter = {layer: torch.zeros(len(thresholds[layer]), dtype=torch.float64) for layer in layers}
        area = {layer: torch.zeros(len(thresholds[layer]), dtype=torch.float64) for layer in layers}
        size = art.shape[-2:]
        with torch.no_grad():
            for s in _batches(n_samples, batch_size):
                generator(z[s], y[s] if y is not None else None)
                am = art_mask[s].to(device)
                for layer in layers:
                    t = thresholds[layer].to(device)
                    a = acts[layer].float()
                    cs = max(1, (1 << 24) // max(1, a.shape[0] * size[0] * size[1]))  # bound memory
                    for c0 in range(0, a.shape[1], cs):
                        up = F.interpolate(
                            a[:, c0 : c0 + cs], size=size, mode="bilinear", align_corners=False
                        )
                        tc = t[c0 : c0 + cs][None, :, None, None]
                        # ">= t" (not "> t") so a unit with a plateau at its top level still has a mask; a unit
                        # whose level is 0 (mostly off) must be strictly positive.
                        m = torch.where(tc > 0, up >= tc, up > 0)
                        inter[layer][c0 : c0 + cs] += (m & am).sum((0, 2, 3)).double().cpu()
                        area[layer][c0 : c0 + cs] += m.sum((0, 2, 3)).double().cpu()

        stats = {}
        exact = set(prunable_layers(generator))
        for layer in layers:
            union = area[layer] + art_area - inter[layer]
            iou = torch.where(union > 0, inter[layer] / union.clamp_min(1), torch.zeros_like(union))
            mean = (sums[layer] / counts[layer]).numpy()
            stats[layer] = LayerStats(
                layer, mean, thresholds[layer].double().numpy(), iou.numpy(), layer in exact
            )

    return stats, art_level, float(torch.cat(realism).mean()), torch.cat(base_images) if keep_images else None


def dissect(
    generator: nn.Module,
    discriminator: nn.Module,
    *,
    layers: Sequence[str] | None = None,
    n_samples: int = 512,
    seed: int = 0,
    quantile: float = 0.99,
    candidates: int = 16,
    fid_fn: FidFn | None = None,
    fid_label: str = "fid",
    batch_size: int = 128,
    artifact_method: ArtifactMethod = "gradient",
    artifact_quantile: float = 0.9,
    max_threshold_values: int = 32768,
) -> DissectionReport:
    """Unit statistics, artifact IoU and ablation effects for ``layers`` (default: the middle layers).

    ``candidates`` units (highest IoU) get an ablation test; ``report.units`` ranks them by its measured
    effect. Models are put in eval mode for the run and restored afterwards.
    """
    layers = list(layers or default_layers(generator))
    device = next(generator.parameters()).device
    z, y = generator.sample_inputs(n_samples, seed=seed, device=device)

    with _eval(generator, discriminator):
        stats, art_level, base_realism, base_images = _unit_stats_and_iou(
            generator,
            discriminator,
            layers,
            z,
            y,
            quantile,
            artifact_method,
            artifact_quantile,
            batch_size,
            max_threshold_values,
            keep_images=fid_fn is not None,
            seed=seed,
        )
        # Intervention on the top-IoU candidates, over the same latents.
        ranked_iou = sorted(
            ((float(st.iou[u]), layer, u) for layer, st in stats.items() for u in range(len(st.iou))),
            key=lambda t: -t[0],
        )
        tested = [(layer, u) for iou, layer, u in ranked_iou[:candidates] if iou > 0]
        base_fid = float(fid_fn(base_images)) if fid_fn is not None else None
        effects = ablation_sweep(generator, discriminator, tested, z, y, fid_fn=fid_fn, batch_size=batch_size)

    units = [
        UnitEffect(
            layer,
            u,
            float(stats[layer].iou[u]),
            realism_delta=r - base_realism,
            fid_delta=(f - base_fid) if f is not None and base_fid is not None else None,
        )
        for (layer, u), (r, f) in zip(tested, effects, strict=True)
    ]
    units.sort(key=lambda e: (-e.effect, -e.realism_delta))
    return DissectionReport(
        layers=stats,
        units=units,
        base_realism=base_realism,
        base_fid=base_fid,
        n_samples=n_samples,
        seed=seed,
        quantile=quantile,
        artifact_method=artifact_method,
        artifact_threshold=art_level,
        fid_label=fid_label,
    )


# --- image strips -----------------------------------------------------------------------------------------


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> [N, H, W, C] uint8."""
    return to_uint8(x).transpose(0, 2, 3, 1)


@torch.no_grad()
def strip_image(generator: nn.Module, units: Units, n: int = 8, seed: int = 0, min_size: int = 64):
    """A PIL image: the same ``n`` latents before (top row) and after ablating ``units`` (bottom row)."""
    from PIL import Image

    device = next(generator.parameters()).device
    z, y = generator.sample_inputs(n, seed=seed, device=device)
    with _eval(generator):
        before = generator(z, y)
        with ablate(generator, units):
            after = generator(z, y)
    rows = [_to_uint8(before), _to_uint8(after)]
    _, h, w, _ = rows[0].shape
    scale = max(1, math.ceil(min_size / h))  # tiny images get a nearest-neighbour zoom to stay visible
    gap = 2
    # RGB with a coloured gap: a white or black gap would hide bright or dark artifacts at image borders.
    canvas = np.empty((2 * h + gap, n * (w + gap) - gap, 3), dtype=np.uint8)
    canvas[:] = (70, 130, 230)
    for r, imgs in enumerate(rows):
        for i, img in enumerate(imgs):
            canvas[r * (h + gap) : r * (h + gap) + h, i * (w + gap) : i * (w + gap) + w] = img[..., :3]
    pil = Image.fromarray(canvas)
    return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)


def save_strip(generator: nn.Module, units: Units, path: str | Path, n: int = 8, seed: int = 0) -> Path:
    """Write ``strip_image`` as a PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    strip_image(generator, units, n=n, seed=seed).save(path)
    return path
