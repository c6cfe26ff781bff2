"""Generator/discriminator families, built from a ``ModelSpec`` by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from .base import Discriminator, Generator, ModelSpec
from .dcgan import DCGANDiscriminator, DCGANGenerator

GENERATORS: dict[str, Callable[[ModelSpec], Generator]] = {"dcgan": DCGANGenerator}
DISCRIMINATORS: dict[str, Callable[[ModelSpec], Discriminator]] = {"dcgan": DCGANDiscriminator}


def _lookup(table: dict, family: str, what: str):
    if family not in table:
        raise ValueError(f"unknown model family '{family}' for the {what}; known: {sorted(table)}")
    return table[family]


def build_generator(spec: ModelSpec) -> Generator:
    return _lookup(GENERATORS, spec.family, "generator")(spec)


def build_discriminator(spec: ModelSpec) -> Discriminator:
    return _lookup(DISCRIMINATORS, spec.family, "discriminator")(spec)


def load_generator(checkpoint: str | Path, ema: bool = True, map_location: str = "cpu") -> Generator:
    """Rebuild a generator from a ganlib checkpoint (loaded with ``weights_only=True``), in eval mode."""
    state = torch.load(checkpoint, map_location=map_location, weights_only=True)
    g = build_generator(ModelSpec.from_dict(state["model_spec"]))
    g.load_state_dict(state["generator_ema" if ema and "generator_ema" in state else "generator"])
    return g.eval()


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "Discriminator",
    "Generator",
    "ModelSpec",
    "build_discriminator",
    "build_generator",
    "load_generator",
]
