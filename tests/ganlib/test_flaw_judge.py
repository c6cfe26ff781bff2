"""The flaw judge and its validation on a toy generator whose flaws are known (tests/ganlib/toy_flaws.py):
a unit that paints blobs on the flawed samples is found, trusted and removed; random units are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from toy_flaws import BLOB_ABOVE, ToyGenerator, pixel_features, real_features

from ganlib.ablation_effects import Effect, Measure, Noise, _decide, measure_effects
from ganlib.flaw_dissect import judge_units, random_masks_like
from ganlib.flaw_judge import label_by_realism
from ganlib.metrics.realism import RealManifold
from ganlib.metrics.stats import FeatureStats
from ganlib.prune import ablate


@pytest.fixture(scope="module")
def manifold() -> RealManifold:
    return RealManifold(real_features())


def test_realism_score_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(7, 3)) * 1.5
    # Brute force, as the paper defines it: k-NN radii (k=3) within the real set, keep the smaller half.
    d = np.linalg.norm(real[:, None] - real[None], axis=2)
    radii = np.sort(d, axis=1)[:, 3]
    keep = np.argsort(radii)[:20]
    expected = [max(radii[i] / np.linalg.norm(f - real[i]) for i in keep) for f in fake]
    np.testing.assert_allclose(RealManifold(real, k=3).realism(fake), expected, rtol=1e-10)


def test_labels_are_the_lowest_and_highest_realism():
    labels = label_by_realism(np.array([5.0, 1.0, 3.0, 0.5, 4.0, 2.0, 6.0, 0.1]), 0.25, 0.25)
    assert np.flatnonzero(labels.flawed).tolist() == [3, 7]
    assert np.flatnonzero(labels.good).tolist() == [0, 6]
    assert (labels.flawed_level, labels.good_level) == (0.5, 5.0)


def test_random_masks_keep_each_images_area():
    masks = torch.zeros(5, 1, 8, 8, dtype=torch.bool)
    for i in range(5):
        masks[i, 0, : i + 1, : 2 * i] = True
    rand = random_masks_like(masks, seed=3)
    assert torch.equal(rand.sum((1, 2, 3)), masks.sum((1, 2, 3)))
    assert not torch.equal(rand, masks)


def _iou_direct(g: ToyGenerator, z: torch.Tensor, unit: int, level: float, masks: torch.Tensor) -> float:
    """A unit's IoU with masks, computed straight from the definition."""
    with torch.no_grad():
        a = F.interpolate(g.units(z)[:, unit : unit + 1], size=masks.shape[-2:], mode="bilinear")
    m = (a >= level) if level > 0 else (a > 0)
    return float((m & masks).sum() / (m | masks).sum())


def test_a_unit_painting_blobs_on_flawed_samples_is_found(manifold):
    g = ToyGenerator(blob_unit=True)
    # The toy layer has 8 units and one artifact unit: the lift averages the single best unit.
    run = judge_units(g, pixel_features, manifold, n_samples=512, candidates=4, lift_units=1)
    r = run.report
    z, _ = g.sample_inputs(512, seed=0)
    blobbed = (z[:, 0] > BLOB_ABOVE).numpy()
    assert blobbed[run.judge.labels.flawed].mean() > 0.7  # realism labels do find the blobs
    assert r.accuracy >= 0.8
    best = r.top_units("iou", 1)[0]
    assert (best.layer, best.unit) == ("units", 0)
    assert r.top_units("contrast", 1)[0].unit == 0
    assert r.candidates[0] == ("units", 0)
    assert best.iou == pytest.approx(
        _iou_direct(g, z, 0, float(run.record.threshold["units"][0]), run.artifact_masks), rel=1e-6
    )
    assert r.lift >= 3 and r.trusted, r.verdict()
    others = [u for u in r.units if u.unit != 0]
    assert max(u.iou for u in others) < best.iou / 3


def test_random_units_are_not_found(manifold):
    """The blobs are still there (the judge sees them), but no unit of the dissected layer paints them."""
    g = ToyGenerator(blob_unit=False)
    run = judge_units(g, pixel_features, manifold, n_samples=512, candidates=4, lift_units=1)
    r = run.report
    assert r.accuracy >= 0.8
    assert r.lift < 3 and not r.trusted
    assert r.verdict().startswith("judge not trusted: lift")


def _measure(manifold: RealManifold, low_level: float) -> Measure:
    return Measure(
        pixel_features, FeatureStats.from_features(real_features(), backbone="pixels"), manifold, low_level
    )


def test_effects_remove_the_blob_unit_and_no_random_unit(manifold):
    g = ToyGenerator(blob_unit=True)
    run = judge_units(g, pixel_features, manifold, n_samples=512, lift_units=1)
    measure = _measure(manifold, run.report.flawed_level)
    units = [("units", u) for u in range(8)]
    eff = measure_effects(g, units, measure, n=256, seeds=3, max_remove=4, widths={"units": 8})
    assert eff.removed == {"units": [0]}, eff.reason
    assert eff.confirmed.low[0] < -2 * eff.noise.low_sd  # fewer low-realism samples, beyond the noise
    # Independently, on other latents: without unit 0 fewer images are low-realism.
    z, _ = g.sample_inputs(512, seed=4242)
    with torch.no_grad():
        before = g(z)
        with ablate(g, {"units": [0]}):
            after = g(z)

    def low(x: torch.Tensor) -> float:
        return float(np.mean(manifold.realism(pixel_features(x)) <= run.report.flawed_level))

    assert low(after) < low(before) - 0.1


def test_untrusted_judge_still_measures_but_nothing_random_is_removed(manifold):
    g = ToyGenerator(blob_unit=False)
    run = judge_units(g, pixel_features, manifold, n_samples=512, lift_units=1)
    eff = measure_effects(
        g,
        run.report.candidates,
        _measure(manifold, run.report.flawed_level),
        n=256,
        seeds=3,
        widths={"units": 8},
    )
    assert not eff.removed, eff.reason


@pytest.mark.parametrize(
    ("d_fid", "d_low", "removed", "why"),
    [
        ([-1.3, -1.5], [0.0, 0.0], True, "improves beyond the noise"),  # FID better by > 2 SD (SD 0.577)
        ([-0.5, -0.6], [0.0, 0.0], False, "stays within the noise"),
        ([0.0, 0.0], [-0.05, -0.07], True, "improves beyond the noise"),  # low-realism better by > 2 SD
        ([-2.0, -2.0], [0.05, 0.05], False, "worse beyond the noise"),  # FID better but low-realism worse
    ],
)
def test_removal_needs_a_gain_beyond_two_sd_of_the_seed_noise(d_fid, d_low, removed, why):
    noise = Noise(base_fid=[10.0, 11.0, 10.0, 11.0], base_low=[0.2, 0.22, 0.2, 0.22], n=1000)
    assert noise.fid_sd == pytest.approx(np.std([10, 11, 10, 11], ddof=1))
    ok, reason = _decide(Effect({"l": [1]}, d_fid, d_low), noise, bound=2.0)
    assert ok is removed and why in reason
