"""Structural pruning: exactly the ablated function, smaller, refuses what it cannot do, round-trips."""

from __future__ import annotations

import pytest
import torch
from dissect_helpers import randomize_norms

from ganlib.models import ModelSpec, build_generator, load_generator
from ganlib.prune import (
    PruneError,
    ablate,
    count_flops,
    count_params,
    layer_width,
    prunable_layers,
    prune_units,
)


def make(family: str = "dcgan", num_classes: int = 10, resolution: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    return randomize_norms(build_generator(ModelSpec(family, resolution, 3, 16, num_classes, 8, 8)), seed)


def outputs(g, units=None, n: int = 16):
    z, y = g.sample_inputs(n, seed=7)
    with torch.no_grad():
        if units is None:
            return g(z, y)
        with ablate(g, units):
            return g(z, y)


@pytest.mark.parametrize(
    ("family", "num_classes"),
    [("dcgan", 0), ("dcgan", 10), ("sngan", 0), ("sngan", 10), ("stylegan_lite", 0), ("stylegan_lite", 10)],
)
def test_pruned_output_equals_ablated_output(family, num_classes):
    g = make(family, num_classes)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    units = {layer: [0, 2, 5] for layer in prunable_layers(g)}  # every prunable layer, adjacent ones included
    assert len(units) == {"stylegan_lite": 7}.get(family, 3)
    pruned = prune_units(g, units)

    ablated = outputs(g, units)
    assert (outputs(pruned) - ablated).abs().max() < 1e-5
    assert (outputs(g) - ablated).abs().max() > 1e-2  # the ablation does change the output
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # original untouched
    assert count_params(pruned) < count_params(g)
    assert count_flops(pruned) < count_flops(g)
    for layer in units:
        assert layer_width(pruned, layer) == layer_width(g, layer) - 3


def test_param_count_drops_by_exactly_the_removed_weights():
    g = make(
        "dcgan", num_classes=10
    )  # blocks.1: conv 32 -> 16 (4x4), CBN with 10 classes; blocks.2 conv 16 -> 8
    pruned = prune_units(g, {"blocks.1": [1, 4]})
    per_unit = 32 * 16 + 2 * 10 + 8 * 16  # conv out slice + CBN gain/bias columns + next conv's in slice
    assert count_params(g) - count_params(pruned) == 2 * per_unit
    assert pruned.blocks[1].norm.bn.running_mean.shape == (14,)
    assert pruned.blocks[1].norm.gain.weight.shape == (10, 14)


def test_flops_match_the_analytic_count():
    g = make("dcgan", num_classes=0)  # 32px: widths 32, 16, 8; z_dim 16; 3 channels
    macs = 16 * 32 * 16 + 32 * 16 * 16 * 4 * 4 + 16 * 8 * 16 * 8 * 8 + 8 * 3 * 16 * 16 * 16
    assert count_flops(g) == 2 * macs


def test_refuses_what_it_cannot_prune_exactly():
    sn = make("sngan")
    with pytest.raises(PruneError, match=r"residual block output.*blocks\.1\.norm2"):
        prune_units(sn, {"blocks.1": [0]})
    dc = make("dcgan")
    with pytest.raises(PruneError, match="prunable layers"):
        prune_units(dc, {"to_rgb": [0]})
    with pytest.raises(PruneError, match="has 16 units"):
        prune_units(dc, {"blocks.1": [16]})
    with pytest.raises(PruneError, match="all 8 units"):
        prune_units(dc, {"blocks.2": list(range(8))})
    style = build_generator(ModelSpec("stylegan_lite", 32, 3, 16, 0, 8, 8))
    with pytest.raises(PruneError, match="prunable layers"):
        prune_units(style, {"mapping.fcs.0": [0]})


def test_style_layers_are_ablated_in_the_consumers_style_not_at_their_output():
    """Zeroing a style layer's output leaves its channel in the next layer's demodulation, so it is not what
    removing the channel does; zeroing its style in the consumer is (the ablation ganlib uses)."""
    g = make("stylegan_lite", num_classes=0)
    units = {"synthesis.layers.2": [1, 3]}
    pruned = outputs(prune_units(g, units))
    z, y = g.sample_inputs(16, seed=7)
    handle = g.synthesis.layers[2].register_forward_hook(
        lambda _m, _i, out: out.index_fill(1, torch.tensor([1, 3]), 0)
    )
    with torch.no_grad():
        output_zeroed = g(z, y)
    handle.remove()
    assert (pruned - outputs(g, units)).abs().max() < 1e-5
    assert (pruned - output_zeroed).abs().max() > 1e-3  # demodulation saw the zeroed channels


def test_style_pruned_round_trip(tmp_path):
    g = make("stylegan_lite", num_classes=10)
    pruned = prune_units(g, {"synthesis.layers.1": [0], "synthesis.layers.6": [2, 4]})
    assert pruned.spec.g_layer_widths == (32, 15, 16, 8, 8, 8, 6)
    path = tmp_path / "style.pt"
    torch.save({"model_spec": pruned.spec.to_dict(), "generator": pruned.state_dict()}, path)
    assert (outputs(load_generator(path)) - outputs(pruned)).abs().max() < 1e-6


def test_ablate_removes_its_hooks():
    g = make("dcgan")
    plain = outputs(g)
    with ablate(g, {"blocks.0": [1]}):
        pass
    assert torch.equal(outputs(g), plain)
    assert all(not m._forward_hooks for m in g.modules())


def test_pruned_generator_round_trips_through_a_checkpoint(tmp_path):
    g = make("dcgan", num_classes=10)
    once = prune_units(g, {"blocks.0": [3], "blocks.1": [0, 1]})
    twice = prune_units(once, {"blocks.1": [5]})  # pruning a pruned model accumulates widths
    full = [layer_width(g, layer) for layer in ("blocks.0", "blocks.1", "blocks.2")]
    assert twice.spec.g_layer_widths == (full[0] - 1, full[1] - 3, full[2])
    path = tmp_path / "pruned.pt"
    spec = twice.spec.to_dict()
    assert spec["g_layer_widths"] == [full[0] - 1, full[1] - 3, full[2]]
    torch.save(
        {"model_spec": spec, "generator": twice.state_dict(), "generator_ema": twice.state_dict()}, path
    )

    loaded = load_generator(path)
    assert loaded.spec == twice.spec
    assert count_params(loaded) == count_params(twice)
    assert (outputs(loaded) - outputs(twice)).abs().max() < 1e-6


def test_sngan_pruned_round_trip(tmp_path):
    g = make("sngan", num_classes=10)
    pruned = prune_units(g, {"blocks.2.norm2": [0, 7]})
    path = tmp_path / "sn.pt"
    torch.save({"model_spec": pruned.spec.to_dict(), "generator": pruned.state_dict()}, path)
    assert (outputs(load_generator(path)) - outputs(pruned)).abs().max() < 1e-6


def test_unpruned_spec_dict_is_unchanged():
    # Training compares spec dicts to allow a resume: an unpruned spec round-trips to the same dict.
    spec = ModelSpec("dcgan", 32, 1, 16, 0, 8, 8)
    d = spec.to_dict()
    assert d["g_layer_widths"] is None
    assert ModelSpec.from_dict(d) == spec


def test_pruned_style_generator_exports_with_parity(tmp_path):
    """The pruned widths and rescaled gains survive the ONNX export: ONNX Runtime matches PyTorch."""
    from ganlib.export import check_parity, export_onnx

    g = make("stylegan_lite", num_classes=10)
    pruned = prune_units(g, {"synthesis.layers.2": [0, 5], "synthesis.layers.5": [1]})
    meta = {
        "model_name": "t",
        "model_version": "1",
        "config_hash": "x",
        "data_hash": "y",
        "fid": "0",
        "fid_backbone": "z",
    }
    export_onnx(pruned, tmp_path / "g.onnx", metadata=meta)
    assert check_parity(pruned, tmp_path / "g.onnx").max_abs_err < 1e-4
