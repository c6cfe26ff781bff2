"""What a person checks after pruning: ``dissection.md`` (judge, effects with their noise, the decision and
why) and two pictures, the flawed samples before/after on the same latents and the judge's artifact maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .ablation_effects import EffectReport
from .flaw_dissect import JudgeRun
from .metrics.evaluate import t_half_width
from .metrics.realism import RealManifold
from .pixels import to_uint8
from .prune import Units, ablate
from .units import batches, eval_mode
from .viz import save_rows


def _nhwc(x: torch.Tensor) -> np.ndarray:
    return to_uint8(x).transpose(0, 2, 3, 1)


def _overlay(images: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Grey images with the masked pixels tinted red."""
    grey = _nhwc(images).astype(np.float32).mean(3, keepdims=True).repeat(3, axis=3)
    m = masks.permute(0, 2, 3, 1).numpy().astype(np.float32)
    red = np.array([255.0, 40.0, 40.0], dtype=np.float32)
    return (grey * (1 - 0.6 * m) + red * 0.6 * m).round().astype(np.uint8)


def save_artifact_maps(run: JudgeRun, path: str | Path, n: int = 8) -> Path:
    """Top row: the ``n`` lowest-realism images the judge saw; bottom row: its artifact mask on them."""
    idx = torch.from_numpy(np.argsort(run.judge.labels.realism, kind="stable")[:n].copy())
    images = run.record.images[idx].clamp(-1, 1)
    return save_rows([_nhwc(images), _overlay(images, run.artifact_masks[idx])], path)


@torch.no_grad()
def save_flawed_before_after(
    generator: nn.Module,
    units: Units,
    embed,
    manifold: RealManifold,
    path: str | Path,
    *,
    seed: int,
    pool: int = 512,
    n: int = 8,
    batch_size: int = 256,
) -> Path:
    """The ``n`` lowest-realism of ``pool`` latents (seed ``seed``): before (top) and with ``units`` ablated
    (bottom), the same latents in both rows."""
    device = next(generator.parameters()).device
    z, y = generator.sample_inputs(pool, seed=seed, device=device)
    with eval_mode(generator):
        x = torch.cat([generator(z[s], None if y is None else y[s]).cpu() for s in batches(pool, batch_size)])
        worst = torch.from_numpy(
            np.argsort(manifold.realism(embed(x.clamp(-1, 1))), kind="stable")[:n].copy()
        )
        zz, yy = z[worst.to(device)], None if y is None else y[worst.to(device)]
        with ablate(generator, units):
            after = generator(zz, yy).cpu()
    return save_rows([_nhwc(x[worst].clamp(-1, 1)), _nhwc(after.clamp(-1, 1))], path)


def mean_ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95% t-interval over seeds."""
    mean, half = float(np.mean(values)), t_half_width(list(values)) or 0.0
    return mean, mean - half, mean + half


def _units_table(run: JudgeRun, rows: int = 10) -> list[str]:
    r = run.report
    cand = set(r.candidates)
    shown = {(u.layer, u.unit): u for u in [*r.top_units("iou", rows), *r.top_units("contrast", rows)]}
    lines = [
        "| layer | unit | IoU with artifact masks | IoU with random masks | contrast flawed vs good (SD) | candidate |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for u in sorted(shown.values(), key=lambda u: -u.iou):
        mark = "yes" if (u.layer, u.unit) in cand else ""
        lines.append(
            f"| {u.layer} | {u.unit} | {u.iou:.4f} | {u.iou_random:.4f} | {u.contrast:+.2f} | {mark} |"
        )
    return lines


def _effects_table(eff: EffectReport) -> list[str]:
    nz = eff.noise
    lim_f, lim_l = eff.bound * nz.fid_sd, eff.bound * nz.low_sd
    lines = [
        f"Paired on the same latents: {len(eff.selection_seeds)} selection seeds {eff.selection_seeds} and "
        f"{len(eff.confirmation_seeds)} fresh confirmation seeds {eff.confirmation_seeds}, {eff.n} samples each.",
        f"Noise (SD over {len(nz.base_fid)} seeds of the unablated model): FID {nz.fid_sd:.3f}, low-realism "
        f"fraction {nz.low_sd:.4f}; bound = {eff.bound:g} SD: ±{lim_f:.3f} FID, ±{lim_l:.4f} low-realism.",
        "",
        "| ablated | seeds | ΔFID mean ± SD | Δlow-realism mean ± SD | gain (noise SDs) | beyond the bound |",
        "|---|---|---:|---:|---:|:---:|",
    ]

    def row(e, seeds: str) -> str:
        (f, fs), (lo, ls) = e.fid, e.low
        beyond = []
        if abs(f) > lim_f:
            beyond.append("FID " + ("better" if f < 0 else "worse"))
        if abs(lo) > lim_l:
            beyond.append("low-realism " + ("better" if lo < 0 else "worse"))
        return (
            f"| {e.label()} | {seeds} | {f:+.3f} ± {fs:.3f} | {lo:+.4f} ± {ls:.4f} | {e.gain(nz):+.2f} "
            f"| {', '.join(beyond)} |"
        )

    lines += [row(e, "selection") for e in eff.singles]
    if eff.joint is not None:
        lines.append(row(eff.joint, "selection (joint)"))
    if eff.confirmed is not None:
        lines.append(row(eff.confirmed, "**confirmation (joint)**"))
    return lines


def markdown(
    run: JudgeRun | None,
    effects: EffectReport | None,
    note: str,
    scores: dict[str, Any],
    backbone: str,
    pictures: dict[str, tuple[str, str]],
) -> str:
    """The whole report. ``scores``: fid_before/after (+ _ci), low_before/after (mean, low, high), label."""
    lines = ["# Dissection and pruning", "", f"**Decision:** {note}", ""]
    fid_b, fid_a = scores["fid_before"], scores["fid_after"]
    lines += [
        "| | before | after |",
        "|---|---:|---:|",
        f"| {scores['label']} (95% interval) | {fid_b:.3f} ({scores['fid_ci_before'][0]:.3f}..{scores['fid_ci_before'][1]:.3f}) "
        f"| {fid_a:.3f} ({scores['fid_ci_after'][0]:.3f}..{scores['fid_ci_after'][1]:.3f}) |",
    ]
    if scores.get("low_before") is not None:
        lb, la, ld = scores["low_before"], scores["low_after"], scores["low_delta"]
        lines += [
            f"| low-realism fraction, {scores['low_protocol']} (95% t-interval) | {lb[0]:.4f} ({lb[1]:.4f}..{lb[2]:.4f}) "
            f"| {la[0]:.4f} ({la[1]:.4f}..{la[2]:.4f}) |",
            "",
            f"Low-realism fraction after minus before, paired seed by seed: {ld[0]:+.4f} ({ld[1]:+.4f}..{ld[2]:+.4f}).",
        ]
    if run is not None:
        r = run.report
        lines += [
            "",
            "## The flaw judge",
            "",
            f"- Layers {', '.join(r.layers)}; {r.n_samples} samples (seed {r.seed}).",
            f"- Realism score (Kynkäänniemi et al. 2019, k=3, in `{backbone}` features, real manifold = the "
            f"reference's real features): flawed = the lowest {r.flawed_fraction:.0%} (realism <= "
            f"{r.flawed_level:.4f}, the low-realism threshold), good = the highest {r.good_fraction:.0%} "
            f"(>= {r.good_level:.4f}).",
            f"- Flaw classifier: held-out accuracy **{r.accuracy:.3f}** on {r.n_test} images (trained on "
            f"{r.n_train}; chance 0.5).",
            f"- Artifact masks: CAM of the classifier, top pixels ({r.artifact_area:.1%} of all pixels).",
            f"- **Lift over random masks of equal area: {r.lift:.2f}** (mean IoU of the best {r.lift_units} "
            f"units {r.iou_top:.4f} vs {r.iou_random_top:.4f}); over the same masks shuffled across images: "
            f"{r.lift_shuffled:.2f} ({r.iou_shuffled_top:.4f}).",
            f"- {r.verdict()}.",
            "",
            *_units_table(run),
        ]
    if effects is not None:
        lines += [
            "",
            "## Effects of removal, with the noise",
            "",
            *_effects_table(effects),
            "",
            effects.reason,
        ]
    if pictures:
        lines += ["", "## Pictures", ""]
        lines += [f"- `{Path(path).name}`: {alt}" for alt, path in pictures.values()]
    return "\n".join(lines) + "\n"
