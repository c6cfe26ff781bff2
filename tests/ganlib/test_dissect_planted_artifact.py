"""The issue's acceptance test: a unit planted in a trained generator to paint a bright blob is found by
dissection (top IoU and top measured effect), and pruning it removes the blob and improves FID."""

from __future__ import annotations

import pytest
import torch
from dissect_helpers import pixel_fid, plant_blob

from ganlib.dissect import artifact_maps, dissect
from ganlib.models import load_discriminator, load_generator
from ganlib.prune import ablate, count_params, prune_units

pytestmark = pytest.mark.slow  # shares a ~20 s (CPU) training run


def test_planted_blob_unit_is_found_verified_and_pruned(trained_dcgan):
    ckpt, split = trained_dcgan
    g, d = load_generator(ckpt), load_discriminator(ckpt)
    unit = plant_blob(g)
    fid = pixel_fid(split)
    z, y = g.sample_inputs(256, seed=123)  # fresh latents, not the ones dissection saw
    with torch.no_grad():
        planted = g(z, y)
    assert (planted[:, :, :3, :3] > 0.9).all(), "the planted blob should be in every image"

    report = dissect(g, d, n_samples=256, candidates=4, fid_fn=fid, fid_label="fid[pixels-8x8]", seed=0)

    iou = report.layers["blocks.1"].iou
    assert list(report.layers) == ["blocks.1"]  # the default: the middle prunable layer
    assert int(iou.argmax()) == unit, f"IoU should single out the planted unit: {iou.round(4)}"
    top = report.units[0]
    assert (top.layer, top.unit) == ("blocks.1", unit), report.to_markdown()
    assert top.fid_delta < 0 and top.realism_delta > 0, report.to_markdown()
    assert report.select(max_remove=1) == {"blocks.1": [unit]}

    pruned = prune_units(g, report.select(max_remove=1))
    with torch.no_grad():
        after = pruned(z, y)
        with ablate(g, {"blocks.1": [unit]}):
            ablated = g(z, y)
    assert (after - ablated).abs().max() < 1e-5
    assert (after[:, :, :3, :3] < 0.5).float().mean() > 0.9, "the blob should be gone"
    assert fid(after) < fid(planted) - 2.0
    assert count_params(pruned) < count_params(g)


def test_artifact_map_points_at_the_blob(trained_dcgan):
    ckpt, _ = trained_dcgan
    g, d = load_generator(ckpt), load_discriminator(ckpt)
    plant_blob(g)
    z, y = g.sample_inputs(64, seed=1)
    with torch.no_grad():
        x = g(z, y)
    for method in ("gradient", "occlusion"):
        a = artifact_maps(d, x, y, method=method)
        assert a.shape == (64, 1, 16, 16) and (a >= 0).all()
        corner = a[:, :, :4, :4].mean()
        rest = a.sum() - a[:, :, :4, :4].sum()
        assert corner > 2 * rest / (a.numel() - 64 * 16), f"{method}: corner {corner:.4f} vs elsewhere"


def test_joint_confirmation_keeps_the_planted_unit_and_only_units_that_help_together(trained_dcgan):
    """The pipeline's selection: artifact candidates added greedily, each kept only if the JOINT ablation
    improves FID on latents the dissection never saw."""
    from ganlib.artifact_pruning import confirm_jointly
    from ganlib.config import parse_config

    ckpt, split = trained_dcgan
    g, d = load_generator(ckpt), load_discriminator(ckpt)
    unit = plant_blob(g)
    fid = pixel_fid(split)
    report = dissect(g, d, n_samples=256, candidates=8, fid_fn=fid, seed=0)
    cfg = parse_config({"dissect": {"n_samples": 256, "max_remove": 4}})

    chosen = confirm_jointly(g, report, fid, cfg, "cpu")

    assert unit in chosen.get("blocks.1", [])
    # Independent check on yet other latents: removing the chosen set together beats the original.
    z, y = g.sample_inputs(256, seed=777)
    with torch.no_grad():
        base = fid(g(z, y))
        with ablate(g, chosen):
            joint = fid(g(z, y))
    assert joint < base
    for layer, units in chosen.items():
        for u in units:
            effect = next(e for e in report.units if (e.layer, e.unit) == (layer, u))
            assert effect.realism_delta > 0 and effect.fid_delta < 0  # both of the paper's signs
