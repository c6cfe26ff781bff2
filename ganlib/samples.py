"""Sample grids of a generator, so callers (the pipeline, notebooks) never handle tensors themselves."""

from __future__ import annotations

from pathlib import Path

import torch

from .models.base import Generator
from .viz import save_grid


@torch.no_grad()
def save_samples(generator: Generator, path: str | Path, n: int = 100, seed: int = 0, nrow: int = 10) -> Path:
    """``n`` samples (balanced classes for conditional generators) from fixed latents, as a PNG grid."""
    device = next(generator.parameters()).device
    z, y = generator.sample_inputs(n, seed=seed, device=device)
    return save_grid(generator.eval()(z, y).float().cpu().numpy(), path, nrow=nrow)
