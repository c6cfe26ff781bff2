"""Dissection mechanics on small untrained models: batched ablation, thresholds, report, strips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from dissect_helpers import randomize_norms
from PIL import Image

from ganlib.dissect import DissectionReport, LayerStats, UnitEffect, dissect, save_strip
from ganlib.models import ModelSpec, build_discriminator, build_generator
from ganlib.prune import ablate
from ganlib.units import ablation_sweep, default_layers


def models(family: str = "dcgan", num_classes: int = 10):
    torch.manual_seed(0)
    spec = ModelSpec(family, 16, 1, 8, num_classes, 8, 8)
    return randomize_norms(build_generator(spec)), build_discriminator(spec).eval()


@pytest.mark.parametrize("units_per_pass", [1, 3, 8])
def test_batched_sweep_equals_one_ablation_at_a_time(units_per_pass):
    g, d = models()
    units = [("blocks.0", 1), ("blocks.1", 0), ("blocks.1", 5), ("blocks.0", 7)]
    z, y = g.sample_inputs(10, seed=3)
    seen: list[torch.Tensor] = []

    def score(images: torch.Tensor, yy: torch.Tensor) -> tuple[float, float]:
        seen.append(images)
        assert torch.equal(yy, y)
        return float(d(images, yy).mean()), float(images.mean())

    swept = ablation_sweep(g, units, z, y, score_fn=score, batch_size=7, units_per_pass=units_per_pass)
    with torch.no_grad():
        for (layer, u), (realism, mean), images in zip(units, swept, seen, strict=True):
            with ablate(g, {layer: [u]}):
                x = g(z, y)
            assert images.shape == x.shape
            assert (images - x).abs().max() < 1e-5
            assert realism == pytest.approx(float(d(x, y).mean()), abs=1e-4)
            assert mean == pytest.approx(float(x.mean()), abs=1e-6)


def test_dissect_statistics_and_modes():
    g, d = models()
    g.train(), d.train()
    report = dissect(
        g, d, layers=["blocks.0", "blocks.1"], n_samples=40, candidates=5, batch_size=16, quantile=0.9
    )
    assert g.training and d.training  # modes restored
    assert set(report.layers) == {"blocks.0", "blocks.1"}

    # Thresholds and means agree with a direct computation over the same latents.
    z, y = g.sample_inputs(40, seed=0)
    g.eval()
    acts = {}
    handle = g.blocks[1].register_forward_hook(lambda m, i, o: acts.update(a=o))
    with torch.no_grad():
        g(z, y)
    handle.remove()
    flat = acts["a"].transpose(0, 1).flatten(1).numpy()
    st = report.layers["blocks.1"]
    np.testing.assert_allclose(st.mean, flat.mean(1), rtol=1e-4, atol=1e-6)
    k = int(np.ceil(0.9 * flat.shape[1]))
    np.testing.assert_allclose(st.threshold, np.sort(flat, 1)[:, k - 1], rtol=1e-5)
    assert ((st.iou >= 0) & (st.iou <= 1)).all()

    assert 0 < len(report.units) <= 5
    effects = [u.effect for u in report.units]
    assert effects == sorted(effects, reverse=True)  # ranked by measured effect
    assert all(u.fid_delta is None for u in report.units)  # no fid_fn: realism is the effect


def test_sngan_layers_are_flagged_prunable_or_not():
    g, d = models("sngan", num_classes=0)
    report = dissect(g, d, layers=["blocks.0", "blocks.0.norm2"], n_samples=16, candidates=3, batch_size=16)
    assert {name: st.prunable for name, st in report.layers.items()} == {
        "blocks.0": False,
        "blocks.0.norm2": True,
    }
    assert {u.layer for u in report.units} == {"blocks.0", "blocks.0.norm2"}  # both were ablation-tested
    assert set(report.select(max_remove=8, min_effect=-1e9)) == {"blocks.0.norm2"}


def test_default_layers_are_the_middle_prunable_ones():
    assert default_layers(build_generator(ModelSpec("dcgan", 32, 1, 8, 0, 8, 8))) == ["blocks.1"]
    assert default_layers(build_generator(ModelSpec("dcgan", 64, 1, 8, 0, 8, 8))) == ["blocks.1", "blocks.2"]
    assert default_layers(build_generator(ModelSpec("sngan", 32, 1, 8, 0, 8, 8))) == ["blocks.1.norm2"]


def _report(units: list[UnitEffect]) -> DissectionReport:
    stats = {
        "a": LayerStats("a", np.zeros(3), np.zeros(3), np.zeros(3)),
        "b": LayerStats("b", *[np.zeros(8)] * 3),
        "c": LayerStats("c", *[np.zeros(8)] * 3, prunable=False),
    }
    return DissectionReport(stats, units, -1.0, 20.0, 64, 0, 0.99, "gradient", 0.1, fid_label="fid[x]")


def test_select_and_markdown():
    units = [
        UnitEffect("c", 6, 0.5, realism_delta=0.9, fid_delta=-5.0),  # best, but its layer is not prunable
        UnitEffect("b", 4, 0.2, realism_delta=0.5, fid_delta=-3.0),
        UnitEffect("a", 0, 0.3, realism_delta=0.1, fid_delta=-2.0),
        UnitEffect("a", 1, 0.1, realism_delta=0.2, fid_delta=-1.0),
        UnitEffect("a", 2, 0.1, realism_delta=0.2, fid_delta=-0.5),
        UnitEffect("b", 1, 0.1, realism_delta=-0.2, fid_delta=+1.0),
    ]
    r = _report(units)
    assert r.select(max_remove=1) == {"b": [4]}
    assert r.select(max_remove=8) == {"b": [4], "a": [0, 1]}  # never all 3 units of layer "a"
    assert r.select(max_remove=8, min_effect=1.5) == {"b": [4], "a": [0]}
    assert r.select(max_remove=1, prunable_only=False) == {"c": [6]}
    md = r.to_markdown(selected=r.select(max_remove=2))
    assert "| 2 | b | 4 | 0.2000 | -3.000 | +0.5000 | yes |" in md
    assert "Δ fid[x]" in md and "fid[x] 20.000" in md and "ablation only): c" in md
    assert json.loads(json.dumps(r.to_dict()))["units"][1] == {
        "layer": "b",
        "unit": 4,
        "iou": 0.2,
        "fid_delta": -3.0,
        "realism_delta": 0.5,
    }


def test_strip_shows_the_same_latents_before_and_after(tmp_path):
    g, _ = models()
    path = save_strip(g, {"blocks.1": [0, 1, 2, 3]}, tmp_path / "strip.png", n=4)
    im = np.asarray(Image.open(path))
    scale = 4  # 16px images are zoomed to 64px
    h = 16 * scale
    assert im.shape == ((2 * 16 + 2) * scale, (4 * 16 + 3 * 2) * scale, 3)
    top, bottom = im[:h].astype(int), im[-h:].astype(int)
    assert np.abs(top - bottom).max() > 0  # ablation changed the images
    plain = save_strip(g, {}, tmp_path / "plain.png", n=4)
    im = np.asarray(Image.open(plain))
    assert np.array_equal(im[:h], im[-h:])  # nothing ablated: both rows identical
