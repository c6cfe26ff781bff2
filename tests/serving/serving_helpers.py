"""Helpers shared by the serving tests (a unique module name: tests/ dirs are not packages)."""

from __future__ import annotations

MODEL_METADATA = {
    "model_name": "digits",
    "model_version": "v1",
    "config_hash": "c0ffee",
    "data_hash": "d474",
    "fid": "12.5",
    "fid_backbone": "domain:d474",
}


def make_generator(num_classes: int, seed: int = 0):
    """A small DCGAN with non-trivial weights and BatchNorm statistics (fresh init outputs ~0)."""
    import torch

    from ganlib.models import ModelSpec, build_generator

    torch.manual_seed(seed)
    g = build_generator(ModelSpec("dcgan", 32, 1, 16, num_classes, 8, 8))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0.0, 0.3)
        g.train()
        for _ in range(3):
            g(*g.sample_inputs(32))
    return g.eval()


def manifest_fields(info, **overrides):
    fields = {
        **info.manifest_fields(),
        "fid": {"value": 12.5, "backbone": "domain:d474"},
        "data_hash": "d474",
        "config": {"model": {"family": "dcgan"}, "train": {"steps": 10}},
        "git_commit": "0" * 40,
        "extra": {"parity_max_abs_err": 1e-7},
    }
    fields.update(overrides)
    return fields
