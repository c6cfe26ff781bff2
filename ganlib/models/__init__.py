"""Generator/discriminator families, built from a ``ModelSpec`` by name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ..checkpoint import load_checkpoint
from .base import Discriminator, Generator, ModelSpec
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .sngan import SNGANDiscriminator, SNGANGenerator
from .stylegan_lite import StyleGANLiteGenerator

GENERATORS: dict[str, Callable[[ModelSpec], Generator]] = {
    "dcgan": DCGANGenerator,
    "sngan": SNGANGenerator,
    "stylegan_lite": StyleGANLiteGenerator,
}
# Discriminators take ``(spec, minibatch_discrimination=False, spectral_norm=<family default>)``; the
# style-based G pairs with the SN ResNet D.
DISCRIMINATORS: dict[str, Callable[..., Discriminator]] = {
    "dcgan": DCGANDiscriminator,
    "sngan": SNGANDiscriminator,
    "stylegan_lite": SNGANDiscriminator,
}


def _lookup(table: dict, family: str, what: str):
    if family not in table:
        raise ValueError(f"unknown model family '{family}' for the {what}; known: {sorted(table)}")
    return table[family]


def build_generator(spec: ModelSpec) -> Generator:
    return _lookup(GENERATORS, spec.family, "generator")(spec)


def build_discriminator(
    spec: ModelSpec, minibatch_discrimination: bool = False, spectral_norm: bool | Literal["auto"] = "auto"
) -> Discriminator:
    """``spectral_norm="auto"`` (the config's ``model.d_spectral_norm`` default) keeps the family's default:
    off for DCGAN, on for the ResNet D."""
    options: dict = {"minibatch_discrimination": minibatch_discrimination}
    if spectral_norm != "auto":
        options["spectral_norm"] = bool(spectral_norm)
    return _lookup(DISCRIMINATORS, spec.family, "discriminator")(spec, **options)


def load_generator(checkpoint: str | Path, ema: bool = True, map_location: str = "cpu") -> Generator:
    """Rebuild a generator from a ganlib checkpoint (loaded with ``weights_only=True``), in eval mode."""
    state = load_checkpoint(checkpoint, map_location)
    g = build_generator(ModelSpec.from_dict(state["model_spec"]))  # pruned widths are spec fields
    g.load_state_dict(state["generator_ema" if ema and "generator_ema" in state else "generator"])
    return g.eval()


def load_discriminator(checkpoint: str | Path, map_location: str = "cpu") -> Discriminator | None:
    """The discriminator saved with a training checkpoint, rebuilt with the options it was trained with, in
    eval mode; None when the checkpoint has none (e.g. a pruned generator)."""
    state = load_checkpoint(checkpoint, map_location)
    if "discriminator" not in state:
        return None
    cfg = json.loads(state.get("config", "{}"))  # rebuild D with the options it was trained with
    d = build_discriminator(
        ModelSpec.from_dict(state["model_spec"]),
        bool(cfg.get("loss", {}).get("minibatch_discrimination", False)),
        cfg.get("model", {}).get("d_spectral_norm", "auto"),
    )
    d.load_state_dict(state["discriminator"])
    return d.eval()


__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "Discriminator",
    "Generator",
    "ModelSpec",
    "build_discriminator",
    "build_generator",
    "load_discriminator",
    "load_generator",
]
