"""The pruning step as the workflow runs it: dissect the trained generator, ablate the candidate artifact
units, remove the ones whose ablation makes the samples better, and measure FID before and after with the
same protocol as the evaluation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import GANConfig
from .dissect import dissect, save_strip
from .metrics import FeatureBackbone, frechet_distance
from .metrics.stats import FeatureStats
from .models import load_discriminator, load_generator
from .prune import SITES, ablate, count_params, prunable_layers, prune_units
from .scoring import load_reference, score_generator


def _fid_fn(backbone, reference: FeatureStats):
    """FID of a batch of images against the reference: what dissection ranks ablations by."""

    def fid(images: torch.Tensor) -> float:
        feats = backbone.features(images.float().clamp(-1, 1).cpu())
        return frechet_distance(FeatureStats.from_features(feats, backbone=backbone.name), reference).value

    return fid


def confirm_jointly(generator, report, fid_fn, cfg: GANConfig, device: str) -> dict[str, list[int]]:
    """Choose units to remove so that removing them TOGETHER helps, on latents the dissection never saw.

    Candidates must look like artifact units on both counts the paper uses: ablating one alone raised D's
    realism score and lowered FID. Individual effects do not add up (removing four "helpful" units at once
    once doubled FID here), and a few-point FID gain at a few hundred samples can be noise, so units are then
    added greedily, each kept only if the joint ablation's FID on fresh latents still improves.
    """
    candidates = [
        u
        for u in report.units
        if report.layers[u.layer].prunable
        and u.fid_delta is not None
        and u.fid_delta < 0
        and u.realism_delta > 0
    ]
    z, y = generator.sample_inputs(cfg.dissect.n_samples, seed=10_000 + report.seed, device=device)

    @torch.no_grad()
    def fid_now(units: dict[str, list[int]]) -> float:
        with ablate(generator, units):
            return fid_fn(
                torch.cat(
                    [
                        generator(z[i : i + 256], None if y is None else y[i : i + 256])
                        for i in range(0, len(z), 256)
                    ]
                )
            )

    chosen: dict[str, list[int]] = {}
    best = fid_now(chosen)
    for u in candidates:
        if sum(map(len, chosen.values())) >= cfg.dissect.max_remove:
            break
        trial = {**chosen, u.layer: sorted([*chosen.get(u.layer, []), u.unit])}
        if len(trial[u.layer]) >= len(report.layers[u.layer].mean):
            continue  # never a whole layer
        score = fid_now(trial)
        if score < best:
            chosen, best = trial, score
    return chosen


def _why_nothing_removed(generator, cfg: GANConfig) -> str:
    """One line for the user: why the pruned model is the trained one."""
    if not cfg.dissect.enabled or cfg.dissect.max_remove == 0:
        return "nothing removed: pruning is off (dissect.enabled is false or dissect.max_remove is 0)"
    if not prunable_layers(generator):
        return (
            f"nothing removed: a {generator.spec.family} generator has no layer whose units can be removed "
            f"exactly (exact pruning covers {', '.join(sorted(SITES))}); the dissection is a report only"
        )
    return (
        "nothing removed: no unit of a prunable layer both raised D's realism score and lowered FID when "
        "ablated, and improved FID jointly on fresh latents"
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
    discriminator = load_discriminator(checkpoint)  # with the options it was trained with
    if discriminator is None:
        raise ValueError(f"{checkpoint} holds no discriminator to dissect with")
    discriminator = discriminator.to(device)
    reference, _ = load_reference(reference_stats)

    def score(g) -> dict[str, Any]:
        # The evaluation's protocol (n, seeds, backbone, interval), so before/after/champion are comparable.
        return score_generator(g, backbone, reference_stats, cfg.eval, data_hash, device)

    before = score(generator)
    units: dict[str, list[int]] = {}
    rows: list[dict[str, Any]] = []
    strip = None
    if cfg.dissect.enabled and cfg.dissect.max_remove > 0:
        report = dissect(
            generator,
            discriminator,
            layers=cfg.dissect.layers,
            n_samples=cfg.dissect.n_samples,
            quantile=cfg.dissect.quantile,
            candidates=cfg.dissect.candidates,
            fid_fn=_fid_fn(backbone, reference),
            fid_label=f"fid[{backbone.name}]@{cfg.dissect.n_samples}",
        )
        units = confirm_jointly(generator, report, _fid_fn(backbone, reference), cfg, device)
        rows = [{**u, "removed": u["unit"] in units.get(u["layer"], [])} for u in report.to_dict()["units"]]
        (out_dir / "dissection.md").write_text(report.to_markdown(selected=units))
        if units:
            strip = str(save_strip(generator, units, out_dir / "before_after.png"))

    note = f"removed {sum(map(len, units.values()))} units" if units else _why_nothing_removed(generator, cfg)
    pruned = prune_units(generator, units) if units else copy.deepcopy(generator)
    after = score(pruned) if units else before
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
        "table": rows,
        "strip": strip,
    }
