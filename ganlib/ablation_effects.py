"""What removing units does, measured against the measurement's own noise, on latents the judge never saw.

Two numbers per image set, from one backbone pass (``Measure``): FID against the real reference and the
fraction of low-realism samples (realism at or below the judge's "flawed" level). Every comparison is
paired: the ablated and the original generator on the same latents, ``len(seeds)`` seeds of ``n`` each.

- **Noise**: the standard deviation, over all seeds used, of the *original* generator's numbers; how much
  they move when nothing but the latents changes.
- **Single effects** (selection seeds): each candidate ablated alone (``ganlib.units.ablation_sweep``);
  mean and SD over seeds of (ablated - original). The standardized gain -(ΔFID/σ_FID + Δlow/σ_low) ranks
  them.
- **Joint set** (selection seeds): candidates with a positive gain are added greedily, best first, each
  kept only if *its own* contribution (the joint removal with it minus without it) passes the same noise
  rule as below; individual effects do not add up, and a set must not carry riders.
- **Confirmation** (fresh seeds): the joint set again. It is removed only when it improves FID or the
  low-realism fraction by more than ``bound`` noise SDs and makes neither worse by more than that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .metrics import frechet_distance
from .metrics.realism import RealManifold
from .metrics.stats import FeatureStats
from .prune import Units, ablate
from .units import ablation_sweep, batches, eval_mode

EmbedFn = Callable[[torch.Tensor], np.ndarray]


class Measure:
    """images -> (FID against ``reference``, fraction with realism <= ``low_level``), one backbone pass."""

    def __init__(
        self, embed: EmbedFn, reference: FeatureStats, manifold: RealManifold, low_level: float
    ) -> None:
        self.embed, self.reference, self.manifold, self.low_level = embed, reference, manifold, low_level

    def __call__(self, images: torch.Tensor, _class_id: torch.Tensor | None = None) -> tuple[float, float]:
        feats = self.embed(images.float().clamp(-1, 1).cpu())
        fid = frechet_distance(
            FeatureStats.from_features(feats, backbone=self.reference.backbone), self.reference
        )
        return fid.value, float(np.mean(self.manifold.realism(feats) <= self.low_level))


@dataclass
class Effect:
    """Paired differences (ablated - original), one per seed."""

    units: dict[str, list[int]]
    d_fid: list[float]
    d_low: list[float]

    @property
    def fid(self) -> tuple[float, float]:
        return _mean_sd(self.d_fid)

    @property
    def low(self) -> tuple[float, float]:
        return _mean_sd(self.d_low)

    def gain(self, noise: Noise) -> float:
        """Improvement in noise SDs, both numbers together (> 0: better without the units)."""
        return -(self.fid[0] / noise.fid_sd + self.low[0] / noise.low_sd)

    def label(self) -> str:
        return ", ".join(f"{layer}:{u}" for layer, us in self.units.items() for u in us)

    def to_dict(self, noise: Noise | None = None) -> dict[str, Any]:
        d = {
            "units": self.label(),
            "d_fid": self.fid[0],
            "d_fid_sd": self.fid[1],
            "d_low": self.low[0],
            "d_low_sd": self.low[1],
        }
        if noise is not None:
            d["gain_sd"] = self.gain(noise)
        return d


@dataclass
class Noise:
    base_fid: list[float]  # the original generator's FID per seed (selection, then confirmation seeds)
    base_low: list[float]
    n: int

    @property
    def fid_sd(self) -> float:
        return max(_mean_sd(self.base_fid)[1], 1e-6)

    @property
    def low_sd(self) -> float:
        # The fraction moves in steps of 1/n: never call a smaller SD the noise.
        return max(_mean_sd(self.base_low)[1], 1.0 / self.n)


@dataclass
class EffectReport:
    n: int
    selection_seeds: list[int]
    confirmation_seeds: list[int]
    bound: float
    noise: Noise
    singles: list[Effect]
    joint: Effect | None  # the greedy set on the selection seeds
    confirmed: Effect | None  # the same set on the confirmation seeds
    removed: dict[str, list[int]] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "selection_seeds": self.selection_seeds,
            "confirmation_seeds": self.confirmation_seeds,
            "bound_sd": self.bound,
            "noise_fid_sd": self.noise.fid_sd,
            "noise_low_sd": self.noise.low_sd,
            "base_fid": self.noise.base_fid,
            "base_low": self.noise.base_low,
            "singles": [e.to_dict(self.noise) for e in self.singles],
            "joint": self.joint.to_dict(self.noise) if self.joint else None,
            "confirmed": self.confirmed.to_dict(self.noise) if self.confirmed else None,
            "removed": self.removed,
            "reason": self.reason,
        }


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


@torch.no_grad()
def _generate(generator: nn.Module, z: torch.Tensor, y: torch.Tensor | None, batch_size: int) -> torch.Tensor:
    return torch.cat([generator(z[s], None if y is None else y[s]) for s in batches(len(z), batch_size)])


def _joint(
    generator: nn.Module,
    units: Units,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
    base: Sequence[tuple[float, float]],
    measure: Measure,
    batch_size: int,
) -> Effect:
    d_fid, d_low = [], []
    with ablate(generator, units):
        for (z, y), (fid0, low0) in zip(inputs, base, strict=True):
            fid, low = measure(_generate(generator, z, y, batch_size))
            d_fid.append(fid - fid0)
            d_low.append(low - low0)
    return Effect({k: sorted(v) for k, v in units.items()}, d_fid, d_low)


def _marginal(trial: Effect, current: Effect | None) -> Effect:
    """What adding the last unit did: trial minus the current set, seed by seed."""
    if current is None:
        return trial
    return Effect(
        trial.units,
        [a - b for a, b in zip(trial.d_fid, current.d_fid, strict=True)],
        [a - b for a, b in zip(trial.d_low, current.d_low, strict=True)],
    )


def _decide(confirmed: Effect, noise: Noise, bound: float) -> tuple[bool, str]:
    (dfid, _), (dlow, _) = confirmed.fid, confirmed.low
    lim_fid, lim_low = bound * noise.fid_sd, bound * noise.low_sd
    nums = (
        f"ΔFID {dfid:+.3f} (bound ±{lim_fid:.3f}), Δlow-realism {dlow:+.4f} (bound ±{lim_low:.4f}) "
        f"on fresh seeds, bound = {bound:g} SD of the unablated model's seed-to-seed noise"
    )
    better = -dfid > lim_fid or -dlow > lim_low
    worse = dfid > lim_fid or dlow > lim_low
    if better and not worse:
        return True, f"removing {confirmed.label()} improves beyond the noise: {nums}"
    if worse:
        return False, f"the best joint removal ({confirmed.label()}) is worse beyond the noise: {nums}"
    return False, f"the best joint removal ({confirmed.label()}) stays within the noise: {nums}"


def measure_effects(
    generator: nn.Module,
    candidates: Sequence[tuple[str, int]],
    measure: Measure,
    *,
    n: int = 1024,
    seeds: int = 4,
    seed_offset: int = 10_000,
    max_remove: int = 4,
    widths: dict[str, int] | None = None,
    bound: float = 2.0,
    batch_size: int = 256,
) -> EffectReport:
    """Single, joint and confirmed effects of removing ``candidates`` (see the module docstring).

    Selection uses seeds ``seed_offset .. + seeds - 1``, confirmation the next ``seeds``. ``widths`` (units
    per layer) keeps a layer from losing all its units. The generator is in eval mode for the run.
    """
    if seeds < 2:
        raise ValueError(f"the noise needs at least 2 seeds; got {seeds}")
    device = next(generator.parameters()).device
    sel_seeds = list(range(seed_offset, seed_offset + seeds))
    conf_seeds = list(range(seed_offset + seeds, seed_offset + 2 * seeds))
    with eval_mode(generator):
        inputs = {s: generator.sample_inputs(n, seed=s, device=device) for s in sel_seeds + conf_seeds}
        base = {s: measure(_generate(generator, *inputs[s], batch_size)) for s in inputs}
        noise = Noise([base[s][0] for s in inputs], [base[s][1] for s in inputs], n)

        per_seed = [
            ablation_sweep(generator, list(candidates), *inputs[s], score_fn=measure, batch_size=batch_size)
            for s in sel_seeds
        ]
        singles = [
            Effect(
                {layer: [u]},
                [per_seed[i][j][0] - base[s][0] for i, s in enumerate(sel_seeds)],
                [per_seed[i][j][1] - base[s][1] for i, s in enumerate(sel_seeds)],
            )
            for j, (layer, u) in enumerate(candidates)
        ]
        singles.sort(key=lambda e: -e.gain(noise))

        sel_inputs, sel_base = [inputs[s] for s in sel_seeds], [base[s] for s in sel_seeds]
        chosen: dict[str, list[int]] = {}
        joint: Effect | None = None
        for e in singles:
            if e.gain(noise) <= 0 or sum(map(len, chosen.values())) >= max_remove:
                break
            ((layer, (u,)),) = e.units.items()
            trial = {**chosen, layer: [*chosen.get(layer, []), u]}
            if widths is not None and len(trial[layer]) >= widths.get(layer, len(trial[layer]) + 1):
                continue  # never a whole layer
            t = e if joint is None else _joint(generator, trial, sel_inputs, sel_base, measure, batch_size)
            if _decide(_marginal(t, joint), noise, bound)[0]:  # this unit itself must matter
                chosen, joint = trial, t

        report = EffectReport(n, sel_seeds, conf_seeds, bound, noise, singles, joint, None)
        if joint is None:
            best = singles[0] if singles else None
            report.reason = (
                f"no candidate's removal improved FID or the low-realism fraction beyond {bound:g} SD of the "
                f"seed noise (±{bound * noise.fid_sd:.3f} FID, ±{bound * noise.low_sd:.4f} low-realism) on the "
                "selection seeds without making the other worse"
                + (
                    f"; best: {best.label()}, ΔFID {best.fid[0]:+.3f}, Δlow-realism {best.low[0]:+.4f}"
                    if best
                    else " (no candidates)"
                )
            )
            return report
        report.confirmed = _joint(
            generator,
            chosen,
            [inputs[s] for s in conf_seeds],
            [base[s] for s in conf_seeds],
            measure,
            batch_size,
        )
        ok, report.reason = _decide(report.confirmed, noise, bound)
        report.removed = report.confirmed.units if ok else {}
    return report
