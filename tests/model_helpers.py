"""Small generators for tests, shared across test folders (tests/ is on pytest's pythonpath)."""

from __future__ import annotations

import torch

from ganlib.models import ModelSpec, build_generator
from ganlib.models.base import Generator


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
