"""Units planted in a trained generator to paint a bright blob are found and removed: one that paints it on
every image by the discriminator's dissection (top IoU and top measured effect) and the noise-bounded
effects stage; one that paints it only on some images by the flaw judge as well."""

from __future__ import annotations

import pytest
import torch
from dissect_helpers import pixel_features, pixel_fid, plant_blob, real_images

from ganlib.ablation_effects import Measure, measure_effects
from ganlib.dissect import artifact_maps, dissect
from ganlib.flaw_dissect import judge_units
from ganlib.metrics.realism import RealManifold
from ganlib.metrics.stats import FeatureStats
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


def _pixel_measure(split, low_level: float) -> tuple[Measure, RealManifold]:
    real = pixel_features(real_images(split))
    manifold = RealManifold(real)
    return Measure(
        pixel_features, FeatureStats.from_features(real, backbone="pixels-8x8"), manifold, low_level
    ), manifold


def test_noise_bounded_effects_remove_the_planted_unit_and_only_units_that_matter(trained_dcgan):
    """The pipeline's selection over the D judge's candidates: the planted unit is removed, and every unit
    removed with it improved the joint removal beyond the seed noise on its own."""
    ckpt, split = trained_dcgan
    g, d = load_generator(ckpt), load_discriminator(ckpt)
    unit = plant_blob(g)
    report = dissect(g, d, n_samples=256, candidates=8, seed=0)
    # Low realism = outside every real k-NN ball (realism < 1): nearly every blobbed image.
    measure, _ = _pixel_measure(split, low_level=1.0)
    candidates = [(u.layer, u.unit) for u in report.units]
    eff = measure_effects(g, candidates, measure, n=256, seeds=3, max_remove=4, widths={"blocks.1": 16})

    assert unit in eff.removed.get("blocks.1", []), eff.reason
    assert eff.confirmed.fid[0] < -2 * eff.noise.fid_sd
    # Independent check on yet other latents: removing the chosen set beats the original on pixel FID.
    fid = pixel_fid(split)
    z, y = g.sample_inputs(256, seed=777)
    with torch.no_grad():
        base = fid(g(z, y))
        with ablate(g, eff.removed):
            joint = fid(g(z, y))
    assert joint < base - 2.0


def test_flaw_judge_finds_a_unit_that_paints_blobs_only_on_some_samples(trained_dcgan):
    """A planted unit that paints its corner blob only where the first latent is large: realism labels
    those samples flawed, the flaw classifier's maps point at the corner, and the unit tops the IoU ranking
    with a lift far above random masks; the effects stage removes it."""
    ckpt, split = trained_dcgan
    g = load_generator(ckpt)
    unit = plant_blob(g, only_above=0.65)
    z, y = g.sample_inputs(1024, seed=0)
    with torch.no_grad():
        x = g(z, y)
    blobbed = z[:, 0] > 0.7
    assert (x[blobbed, :, :3, :3] > 0.5).float().mean() > 0.9
    assert (x[z[:, 0] < 0.6, :, :3, :3] < 0.5).float().mean() > 0.9

    measure, manifold = _pixel_measure(split, low_level=0.0)
    run = judge_units(g, pixel_features, manifold, n_samples=1024, candidates=8)
    r = run.report
    assert blobbed.numpy()[run.judge.labels.flawed].mean() > 0.5, (
        "realism should label blobbed samples flawed"
    )
    assert r.top_units("iou", 1)[0].unit == unit, r.top_units("iou", 4)
    assert r.trusted, r.verdict()
    assert ("blocks.1", unit) in r.candidates[:2]

    measure.low_level = r.flawed_level
    eff = measure_effects(g, r.candidates, measure, n=512, seeds=3, max_remove=4, widths={"blocks.1": 16})
    assert unit in eff.removed.get("blocks.1", []), eff.reason
