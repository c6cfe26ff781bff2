"""Helpers shared by the export tests (a unique module name: tests/ dirs are not packages)."""

from __future__ import annotations

import torch
from model_helpers import EXPORT_METADATA, spread_generator

METADATA = EXPORT_METADATA


def make_generator(num_classes: int, seed: int = 0) -> torch.nn.Module:
    """A 32px DCGAN with spread weights and BatchNorm statistics (see model_helpers)."""
    return spread_generator(num_classes, seed)
