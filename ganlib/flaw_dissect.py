"""Which units draw the flaws: GAN Dissection (Bau et al. 2019) with the flaw judge's artifact maps as the
concept (Tousi et al. 2021), and a check that the judge carries any signal before anything trusts it.

Over ``n_samples`` generated images:

1. Unit statistics and the images (``ganlib.units.record_units``).
2. Realism of each image against the real manifold in backbone features; the flaw judge trained on the
   lowest- vs highest-realism images (``ganlib.flaw_judge``); its artifact maps, thresholded at their top
   ``1 - artifact_quantile`` of pixels over all images, are the artifact masks. The default keeps 3 % of
   all pixels: flaws sit mostly on the flawed quarter of the images, so that is about an eighth of a
   flawed image, a region rather than the whole digit (at 10 % a blob's mask covered ~40 % of its image).
3. Each unit's IoU with the artifact masks, and with *random masks of equal area* (per image, the same
   number of pixels at uniformly random places): what IoU chance gives units of that size.
4. Each unit's contrast: its mean activation on flawed minus good images, in pooled standard deviations.

**Lift** = mean IoU of the ``lift_units`` best units with the artifact masks / the same with the random
masks (each side takes its own best units, so selection inflates both alike). A lift near 1 means the maps
land where units fire no more than chance would. The same ratio against the artifact masks shuffled across
images (``lift_shuffled``) is reported beside it: it removes where flaws usually are (the digit's strokes)
and keeps only what a map says about its own image; the judge is trusted only with lift >= ``min_lift`` and
held-out accuracy >= ``min_accuracy``. Candidates for the ablation test alternate between the best units by
IoU and by contrast, from the layers that can be pruned exactly when there are any.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .flaw_judge import FlawJudge, train_flaw_judge
from .metrics.realism import RealManifold
from .prune import prunable_layers
from .units import UnitRecord, default_layers, eval_mode, kth_largest_level, mask_iou, record_units

EmbedFn = Callable[[torch.Tensor], np.ndarray]  # images [N, C, H, W] in [-1, 1] -> features [N, D]


@dataclass(frozen=True)
class JudgedUnit:
    layer: str
    unit: int
    iou: float  # with the artifact masks
    iou_random: float  # with the random masks of equal area
    contrast: float  # (mean on flawed - mean on good) / pooled SD of the per-image mean activation
    prunable: bool


@dataclass
class JudgeReport:
    layers: list[str]
    n_samples: int
    seed: int
    flawed_fraction: float
    good_fraction: float
    flawed_level: float  # realism at or below which a sample is flawed: the low-realism threshold
    good_level: float
    accuracy: float  # flaw classifier, held out
    n_train: int
    n_test: int
    artifact_area: float  # fraction of all pixels inside the artifact masks
    lift_units: int
    iou_top: float  # mean IoU of the lift_units best units with the artifact masks
    iou_random_top: float  # the same with random masks of equal area
    iou_shuffled_top: float  # the same with the artifact masks shuffled across images
    min_lift: float
    min_accuracy: float
    units: list[JudgedUnit] = field(repr=False)
    candidates: list[tuple[str, int]] = field(default_factory=list)

    @property
    def lift(self) -> float:
        if self.iou_random_top > 0:
            return self.iou_top / self.iou_random_top
        return float("inf") if self.iou_top > 0 else 0.0

    @property
    def lift_shuffled(self) -> float:
        """Lift over the artifact masks of *other* images: what the maps say about this image beyond where
        flaws usually are (a map that only marks strokes scores about 1 here)."""
        return self.iou_top / self.iou_shuffled_top if self.iou_shuffled_top > 0 else float("inf")

    @property
    def trusted(self) -> bool:
        return self.lift >= self.min_lift and self.accuracy >= self.min_accuracy

    def verdict(self) -> str:
        """One line: whether the judge is trusted, and the numbers that decide it."""
        lift = f"lift {self.lift:.2f} (top-{self.lift_units} unit IoU {self.iou_top:.4f} vs {self.iou_random_top:.4f} with random masks of equal area)"
        acc = f"held-out accuracy {self.accuracy:.3f} on {self.n_test} images"
        if self.trusted:
            return f"judge trusted: {lift} >= {self.min_lift:g}; {acc} >= {self.min_accuracy:g}"
        why = []
        if self.lift < self.min_lift:
            why.append(f"{lift} < {self.min_lift:g}")
        if not self.accuracy >= self.min_accuracy:
            why.append(f"{acc} < {self.min_accuracy:g}")
        return "judge not trusted: " + "; ".join(why)

    def top_units(self, by: str = "iou", n: int = 10) -> list[JudgedUnit]:
        return sorted(self.units, key=lambda u: -getattr(u, by))[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "n_samples": self.n_samples,
            "seed": self.seed,
            "flawed_fraction": self.flawed_fraction,
            "good_fraction": self.good_fraction,
            "flawed_level": self.flawed_level,
            "good_level": self.good_level,
            "accuracy": self.accuracy,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "artifact_area": self.artifact_area,
            "lift": self.lift,
            "lift_units": self.lift_units,
            "iou_top": self.iou_top,
            "iou_random_top": self.iou_random_top,
            "lift_shuffled": self.lift_shuffled,
            "iou_shuffled_top": self.iou_shuffled_top,
            "trusted": self.trusted,
            "verdict": self.verdict(),
            "candidates": [list(c) for c in self.candidates],
        }


@dataclass
class JudgeRun:
    """What ``judge_units`` saw, for the report's pictures."""

    report: JudgeReport
    judge: FlawJudge
    record: UnitRecord
    artifact_maps: torch.Tensor  # [N, 1, H, W]
    artifact_masks: torch.Tensor  # bool [N, 1, H, W]


def random_masks_like(masks: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Per image, a mask with the same number of pixels as ``masks[i]``, at uniformly random places."""
    n = masks.shape[0]
    flat = masks.reshape(n, -1)
    counts = flat.sum(1, keepdim=True)
    gen = torch.Generator().manual_seed(seed)
    ranks = torch.rand(flat.shape, generator=gen).argsort(1).argsort(1)
    return (ranks < counts).reshape(masks.shape)


def _contrast(acts: torch.Tensor, flawed: np.ndarray, good: np.ndarray) -> np.ndarray:
    a = acts.double()
    f, g = a[torch.from_numpy(flawed)], a[torch.from_numpy(good)]
    pooled = ((f.var(0, unbiased=False) + g.var(0, unbiased=False)) / 2).sqrt()
    diff = f.mean(0) - g.mean(0)
    return torch.where(pooled > 0, diff / pooled.clamp_min(1e-12), torch.zeros_like(diff)).numpy()


def _shortlist(units: Sequence[JudgedUnit], n: int) -> list[tuple[str, int]]:
    """Alternately the best remaining unit by IoU and by (positive) contrast, up to ``n`` distinct units."""
    pool = [u for u in units if u.prunable] or list(units)
    by_iou = [u for u in sorted(pool, key=lambda u: -u.iou) if u.iou > 0]
    by_contrast = [u for u in sorted(pool, key=lambda u: -u.contrast) if u.contrast > 0]
    out: list[tuple[str, int]] = []
    for pair in zip(by_iou + [None] * len(by_contrast), by_contrast + [None] * len(by_iou), strict=False):
        for u in pair:
            if u is not None and (u.layer, u.unit) not in out and len(out) < n:
                out.append((u.layer, u.unit))
    return out


def judge_units(
    generator: nn.Module,
    embed: EmbedFn,
    manifold: RealManifold,
    *,
    layers: Sequence[str] | None = None,
    n_samples: int = 2048,
    seed: int = 0,
    quantile: float = 0.99,
    candidates: int = 16,
    flawed_fraction: float = 0.25,
    good_fraction: float = 0.25,
    artifact_quantile: float = 0.97,
    lift_units: int = 4,
    min_lift: float = 3.0,
    min_accuracy: float = 0.6,
    batch_size: int = 256,
) -> JudgeRun:
    """Train the flaw judge on ``n_samples`` images of ``generator`` and rank its units against it (see the
    module docstring). The generator is in eval mode for the run and restored afterwards."""
    layers = list(layers or default_layers(generator))
    device = next(generator.parameters()).device
    z, y = generator.sample_inputs(n_samples, seed=seed, device=device)
    with eval_mode(generator):
        rec = record_units(generator, layers, z, y, quantile=quantile, batch_size=batch_size, seed=seed)
        realism = manifold.realism(embed(rec.images.clamp(-1, 1)))
        judge = train_flaw_judge(
            rec.images, realism, flawed_fraction=flawed_fraction, good_fraction=good_fraction, seed=seed
        )
        maps = judge.maps(rec.images)
        level = float(kth_largest_level(maps.flatten(), artifact_quantile))
        masks = (maps >= level) & (maps > 0)
        shuffled = masks[torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))]
        iou, iou_rand, iou_shuf = mask_iou(
            generator,
            layers,
            z,
            y,
            rec.threshold,
            [masks, random_masks_like(masks, seed), shuffled],
            batch_size,
        )
    exact = set(prunable_layers(generator))
    labels = judge.labels
    units = []
    for layer in layers:
        contrast = _contrast(rec.sample_mean[layer], labels.flawed, labels.good)
        for u in range(len(contrast)):
            units.append(
                JudgedUnit(
                    layer,
                    u,
                    float(iou[layer][u]),
                    float(iou_rand[layer][u]),
                    float(contrast[u]),
                    layer in exact,
                )
            )
    k = max(1, min(lift_units, len(units)))
    top = np.mean(sorted((u.iou for u in units), reverse=True)[:k])
    top_rand = np.mean(sorted((u.iou_random for u in units), reverse=True)[:k])
    top_shuf = np.mean(sorted(np.concatenate([iou_shuf[layer] for layer in layers]), reverse=True)[:k])
    report = JudgeReport(
        layers=layers,
        n_samples=n_samples,
        seed=seed,
        flawed_fraction=flawed_fraction,
        good_fraction=good_fraction,
        flawed_level=labels.flawed_level,
        good_level=labels.good_level,
        accuracy=judge.accuracy,
        n_train=judge.n_train,
        n_test=judge.n_test,
        artifact_area=float(masks.float().mean()),
        lift_units=k,
        iou_top=float(top),
        iou_random_top=float(top_rand),
        iou_shuffled_top=float(top_shuf),
        min_lift=min_lift,
        min_accuracy=min_accuracy,
        units=units,
    )
    report.candidates = _shortlist(units, candidates)
    return JudgeRun(report, judge, rec, maps, masks)
