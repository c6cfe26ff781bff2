"""GAN Dissection (Bau et al., ICLR 2019) with the *discriminator* as the judge of artifacts.

The pipeline judges with the flaw classifier instead (``ganlib.flaw_dissect``): on trained models the
discriminator's maps were a stroke detector, with unit IoU at the level of random masks. This judge stays
for what it does see: an artifact painted on *every* sample (tests/ganlib/test_dissect_planted_artifact.py), which
no judge trained to tell samples apart can.

1. **Unit statistics** (``ganlib.units.record_units``): per unit the mean and the top-quantile level t_u.
2. **Artifact maps without labels.** The trained discriminator says where an image looks fake: per pixel,
   how much its realism logit would rise if that pixel (``"gradient"``: first-order, one backward pass) or
   patch (``"occlusion"``: measured, one D pass per patch) were replaced by a neutral fill (the image's
   median colour). Thresholded at a top quantile, that is the "artifact" concept mask.
3. **Unit-concept IoU** (``ganlib.units.mask_iou``): IoU_u = |M_u & A| / |M_u | A| over all samples.
4. **Intervention.** The ``candidates`` units with the highest IoU are ablated (``ganlib.units.ablation_sweep``,
   many units per forward pass) over the same latents; the change in mean D logit (realism) and in FID
   (``fid_fn``) is measured, and units are ranked by that measured effect, not by IoU.

``fid_fn(images[N, C, H, W] in [-1, 1]) -> float`` is supplied by the caller (built from ``ganlib.metrics``),
so this module does not depend on a particular FID backbone; ``fid_label`` names it in the report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .pixels import to_uint8
from .prune import Units, ablate, prunable_layers
from .units import (
    ablation_sweep,
    batches,
    default_layers,
    eval_mode,
    kth_largest_level,
    mask_iou,
    record_units,
)
from .viz import save_rows

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


def _realism(d: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    return d(x, y).float().reshape(-1)


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
        for s in batches(n, batch_size):
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
                    for s in batches(n, batch_size)
                ]
            )
            for i, j in starts:
                cover[..., i : i + p, j : j + p] += 1
                for s in batches(n, batch_size):
                    x = images[s].clone()
                    x[..., i : i + p, j : j + p] = fill[s]
                    gain = _realism(discriminator, x, None if class_id is None else class_id[s]) - base[s]
                    total[s, :, i : i + p, j : j + p] += gain[:, None, None, None]
        return (total / cover.clamp_min(1)).clamp_min(0)
    raise ValueError(f"artifact method must be 'gradient' or 'occlusion', got {method!r}")


# --- dissection -------------------------------------------------------------------------------------------


def _mean_realism(d: nn.Module, x: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> float:
    with torch.no_grad():
        total = sum(
            float(_realism(d, x[s], None if y is None else y[s]).double().sum())
            for s in batches(len(x), batch_size)
        )
    return total / len(x)


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

    with eval_mode(generator, discriminator):
        rec = record_units(
            generator,
            layers,
            z,
            y,
            quantile=quantile,
            batch_size=batch_size,
            max_threshold_values=max_threshold_values,
            seed=seed,
        )
        images = rec.images.to(device)
        base_realism = _mean_realism(discriminator, images, y, batch_size)
        art = torch.cat(
            [
                artifact_maps(
                    discriminator,
                    images[s],
                    None if y is None else y[s],
                    method=artifact_method,
                    batch_size=batch_size,
                ).cpu()
                for s in batches(n_samples, batch_size)
            ]
        )
        art_level = float(kth_largest_level(art.flatten(), artifact_quantile))
        (iou,) = mask_iou(
            generator, layers, z, y, rec.threshold, [(art >= art_level) & (art > 0)], batch_size
        )
        exact = set(prunable_layers(generator))
        stats = {
            layer: LayerStats(
                layer, rec.mean[layer], rec.threshold[layer].double().numpy(), iou[layer], layer in exact
            )
            for layer in layers
        }
        # Intervention on the top-IoU candidates, over the same latents.
        ranked_iou = sorted(
            ((float(st.iou[u]), layer, u) for layer, st in stats.items() for u in range(len(st.iou))),
            key=lambda t: -t[0],
        )
        tested = [(layer, u) for iou, layer, u in ranked_iou[:candidates] if iou > 0]
        base_fid = float(fid_fn(rec.images)) if fid_fn is not None else None

        def score(x: torch.Tensor, yy: torch.Tensor | None) -> tuple[float, float | None]:
            return (
                _mean_realism(discriminator, x, yy, batch_size),
                float(fid_fn(x.cpu())) if fid_fn is not None else None,
            )

        effects = ablation_sweep(generator, tested, z, y, score_fn=score, batch_size=batch_size)

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


@torch.no_grad()
def save_strip(generator: nn.Module, units: Units, path: str | Path, n: int = 8, seed: int = 0) -> Path:
    """A PNG of the same ``n`` latents before (top row) and after ablating ``units`` (bottom row)."""
    device = next(generator.parameters()).device
    z, y = generator.sample_inputs(n, seed=seed, device=device)
    with eval_mode(generator):
        before = generator(z, y)
        with ablate(generator, units):
            after = generator(z, y)
    return save_rows([to_uint8(x).transpose(0, 2, 3, 1) for x in (before, after)], path)
