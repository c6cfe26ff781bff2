"""Helpers shared by the export tests (a unique module name: tests/ dirs are not packages)."""

from __future__ import annotations

import torch

from ganlib.models import ModelSpec, build_generator

METADATA = {
    "model_name": "digits",
    "model_version": "2025-01-31-abc123",
    "config_hash": "c0ffee",
    "data_hash": "md5:d474",
    "fid": "12.5",
    "fid_backbone": "domain:d474",
}


def make_generator(num_classes: int, seed: int = 0) -> torch.nn.Module:
    """``ModelSpec('dcgan', 32, 1, 16, num_classes, 8, 8)`` with weights and BatchNorm running stats that
    give images spread over [-1, 1]: a fresh init outputs ~0, which would make parity trivially small."""
    torch.manual_seed(seed)
    g = build_generator(ModelSpec("dcgan", 32, 1, 16, num_classes, 8, 8))
    with torch.no_grad():
        for p in g.parameters():
            p.normal_(0.0, 0.3)
        g.train()
        for _ in range(3):
            g(*g.sample_inputs(32))
    return g.eval()
