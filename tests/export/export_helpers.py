"""Helpers shared by the export tests (a unique module name: tests/ dirs are not packages)."""

from __future__ import annotations

import torch
from model_helpers import spread_generator

METADATA = {
    "model_name": "digits",
    "model_version": "2025-01-31-abc123",
    "config_hash": "c0ffee",
    "data_hash": "md5:d474",
    "fid": "12.5",
    "fid_backbone": "domain:d474",
}


def make_generator(num_classes: int, seed: int = 0) -> torch.nn.Module:
    """A 32px DCGAN with spread weights and BatchNorm statistics (see model_helpers)."""
    return spread_generator(num_classes, seed)
