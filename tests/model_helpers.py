"""Small generators and their export/publish records for tests, shared across test folders (tests/ is on
pytest's pythonpath)."""

from __future__ import annotations

import hashlib

import torch

from ganlib.models import ModelSpec, build_generator
from ganlib.models.base import Generator

# Export metadata for test models (export_onnx requires these keys; the values are arbitrary).
EXPORT_METADATA = {
    "model_name": "digits",
    "model_version": "v1",
    "config_hash": "c0ffee",
    "data_hash": "d474",
    "fid": "12.5",
    "fid_backbone": "domain:d474",
}


def spread_generator(
    num_classes: int, seed: int = 0, family: str = "dcgan", resolution: int = 32
) -> Generator:
    """A small generator whose images vary over [-1, 1]: a fresh DCGAN init outputs ~0, which would make
    parity and interpolation checks trivially small. DCGAN also gets non-trivial BatchNorm running stats."""
    torch.manual_seed(seed)
    g = build_generator(ModelSpec(family, resolution, 1, 16, num_classes, 8, 8))
    if family == "dcgan":
        with torch.no_grad():
            for p in g.parameters():
                p.normal_(0.0, 0.3)
            g.train()
            for _ in range(3):
                g(*g.sample_inputs(32))
    return g.eval()


def parameters_digest(module: torch.nn.Module) -> str:
    """The tests' own sha256 of a module's parameters (name, dtype, shape, bytes; in name order), to check the
    digests the training CLI prints per rank."""
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode() + t.numpy().tobytes())
    return h.hexdigest()


def manifest_fields(info, **overrides) -> dict:
    """What ``ganlib.store.publish`` takes for an export ``info``: its own fields plus made-up provenance."""
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
