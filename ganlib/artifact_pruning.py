"""The pruning step as the workflow runs it: judge which units draw flawed samples (``ganlib.flaw_dissect``),
check that the judge carries signal, measure what removing the candidates does against the measurement's
noise (``ganlib.ablation_effects``), remove a set only when it helps beyond that noise, and score before and
after with the evaluation's protocol. Everything a person needs to check it goes to ``dissection.md``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from .ablation_effects import EffectReport, Measure, measure_effects
from .checkpoint import load_checkpoint, save_checkpoint
from .config import GANConfig
from .dissection_report import markdown, mean_ci, save_artifact_maps, save_flawed_before_after
from .flaw_dissect import JudgeRun, judge_units
from .metrics import FeatureBackbone
from .metrics.realism import RealManifold
from .models import load_generator
from .prune import SITES, count_params, layer_width, prunable_layers, prune_units
from .scoring import load_reference, sampler, score_generator


def _label(units: dict[str, list[int]]) -> str:
    return ", ".join(f"{layer}:{u}" for layer, us in units.items() for u in us)


def _shown_units(effects: EffectReport | None) -> dict[str, list[int]]:
    """What the before/after picture ablates: the removed set, else the set that was tested and refused."""
    if effects is None:
        return {}
    for units in (effects.removed, effects.confirmed and effects.confirmed.units):
        if units:
            return units
    return effects.singles[0].units if effects.singles else {}


def _judge_and_measure(
    generator, cfg: GANConfig, backbone: FeatureBackbone, reference, real_features, out_dir: Path
) -> tuple[JudgeRun, EffectReport | None, dict[str, list[int]], str, dict[str, tuple[str, str]]]:
    d = cfg.dissect
    manifold = RealManifold(real_features)
    run = judge_units(
        generator,
        backbone.features,
        manifold,
        layers=d.layers,
        n_samples=d.n_samples,
        quantile=d.quantile,
        candidates=d.candidates,
        flawed_fraction=d.flawed_fraction,
        good_fraction=d.good_fraction,
        artifact_quantile=d.artifact_quantile,
        lift_units=d.lift_units,
        min_lift=d.min_lift,
        min_accuracy=d.min_accuracy,
    )
    pictures = {
        "artifact_maps": (
            "the lowest-realism samples (top) and the judge's artifact masks on them (bottom, red)",
            str(save_artifact_maps(run, out_dir / "artifact_maps.png")),
        )
    }
    exact = set(prunable_layers(generator))
    candidates = [c for c in run.report.candidates if c[0] in exact]
    if not candidates:
        note = f"nothing removed: none of the dissected layers {run.report.layers} can be pruned exactly"
        return run, None, {}, note, pictures
    effects = measure_effects(
        generator,
        candidates,
        Measure(backbone.features, reference, manifold, run.report.flawed_level),
        n=d.effect_samples,
        seeds=d.effect_seeds,
        max_remove=d.max_remove,
        widths={layer: layer_width(generator, layer) for layer in exact},
        bound=d.noise_bound,
    )
    shown = _shown_units(effects)
    if shown:
        what = "removed" if effects.removed else "not removed"
        path = save_flawed_before_after(
            generator,
            shown,
            backbone.features,
            manifold,
            out_dir / "flawed_before_after.png",
            seed=effects.confirmation_seeds[0],
        )
        alt = f"lowest-realism samples (top) and the same latents without {_label(shown)} (bottom, {what})"
        pictures["flawed_before_after"] = (alt, str(path))
    if not run.report.trusted:
        return run, effects, {}, f"nothing removed: {run.report.verdict()}", pictures
    if not effects.removed:
        return run, effects, {}, f"nothing removed: {effects.reason}", pictures
    n = sum(map(len, effects.removed.values()))
    return run, effects, effects.removed, f"removed {n} units: {effects.reason}", pictures


def _low_realism(generator, measure: Measure, cfg: GANConfig, device: str) -> list[float]:
    """The low-realism fraction per seed of the evaluation's protocol (seeds 0 .. n_seeds - 1)."""
    sample = sampler(generator.to(device).eval(), device)
    return [measure(sample(seed, cfg.eval.n_samples))[1] for seed in range(cfg.eval.n_seeds)]


def _why_nothing_ran(generator, cfg: GANConfig) -> str:
    if not cfg.dissect.enabled or cfg.dissect.max_remove == 0:
        return "nothing removed: pruning is off (dissect.enabled is false or dissect.max_remove is 0)"
    return (
        f"nothing removed: a {generator.spec.family} generator has no layer whose units can be removed "
        f"exactly (exact pruning covers {', '.join(sorted(SITES))})"
    )


def dissect_and_prune(
    checkpoint: str | Path,
    cfg: GANConfig,
    *,
    backbone: FeatureBackbone,
    reference_stats: str | Path,
    data_hash: str,
    out_dir: Path,
    device: str = "cpu",
) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    state = load_checkpoint(checkpoint)
    generator = load_generator(checkpoint).to(device)
    reference, real_features = load_reference(reference_stats)

    def score(g) -> dict[str, Any]:
        # The evaluation's protocol (n, seeds, backbone, interval), so before/after/champion are comparable.
        return score_generator(g, backbone, reference_stats, cfg.eval, data_hash, device)

    before = score(generator)
    run, effects, units, pictures = None, None, {}, {}
    if cfg.dissect.enabled and cfg.dissect.max_remove > 0 and prunable_layers(generator):
        run, effects, units, note, pictures = _judge_and_measure(
            generator, cfg, backbone, reference, real_features, out_dir
        )
    else:
        note = _why_nothing_ran(generator, cfg)
    pruned = prune_units(generator, units) if units else copy.deepcopy(generator)
    after = score(pruned) if units else before

    scores: dict[str, Any] = {
        "label": before["label"],
        "fid_before": before["fid"],
        "fid_after": after["fid"],
        "fid_ci_before": before["fid_ci"],
        "fid_ci_after": after["fid_ci"],
        "low_before": None,
        "low_after": None,
        "low_delta": None,
    }
    if effects is not None:
        # On the evaluation's seeds, which played no part in choosing the units.
        measure = Measure(backbone.features, reference, RealManifold(real_features), run.report.flawed_level)
        low_before = _low_realism(generator, measure, cfg, device)
        low_after = _low_realism(pruned, measure, cfg, device) if units else low_before
        scores["low_before"], scores["low_after"] = mean_ci(low_before), mean_ci(low_after)
        scores["low_delta"] = mean_ci([a - b for a, b in zip(low_after, low_before, strict=True)])
        scores["low_protocol"] = f"{cfg.eval.n_seeds} seeds x {cfg.eval.n_samples} (the evaluation's)"
    report = markdown(run, effects, note, scores, backbone.name, pictures)
    (out_dir / "dissection.md").write_text(report)

    pruned_state = {**state, "model_spec": pruned.spec.to_dict(), "generator_ema": pruned.cpu().state_dict()}
    # The pruned checkpoint serves export only: drop the training-only parts whose shapes no longer match.
    for key in ("generator", "opt_g"):
        pruned_state.pop(key, None)
    path = save_checkpoint(pruned_state, out_dir / "pruned.pt")
    return {
        "checkpoint": str(path),
        "removed": units,
        "units_removed": sum(len(v) for v in units.values()),
        "note": note,
        "params_before": count_params(generator),
        "params_after": count_params(pruned),
        "fid_before": before["fid"],
        "fid_after": after["fid"],
        "score_after": after,
        "fid_label": before["label"],
        "scores": scores,
        "judge": run.report.to_dict() if run else None,
        "effects": effects.to_dict() if effects else None,
        "table": _effect_rows(effects, units),
        "pictures": pictures,
        "report": str(out_dir / "dissection.md"),
    }


def _effect_rows(effects: EffectReport | None, removed: dict[str, list[int]]) -> list[dict[str, Any]]:
    """The effect table as plain rows (UI table, prune.json), with the noise bound on every row."""
    if effects is None:
        return []
    bound_fid = effects.bound * effects.noise.fid_sd
    bound_low = effects.bound * effects.noise.low_sd
    rows = []
    for kind, e in [("single", s) for s in effects.singles] + [
        ("joint", effects.joint),
        ("confirmed", effects.confirmed),
    ]:
        if e is None:
            continue
        rows.append(
            {
                "ablated": e.label(),
                "kind": kind,
                "d_fid": e.fid[0],
                "d_fid_sd": e.fid[1],
                "fid_bound": bound_fid,
                "d_low_realism": e.low[0],
                "d_low_realism_sd": e.low[1],
                "low_realism_bound": bound_low,
                "gain_sd": e.gain(effects.noise),
                "removed": kind == "confirmed" and bool(removed),
            }
        )
    return rows
