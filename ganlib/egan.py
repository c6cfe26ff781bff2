"""Evolutionary generator updates: E-GAN (Wang et al. 2018, "Evolutionary Generative Adversarial Networks").

Each generator step, the parent G makes one child per mutation (a step of Adam on one of three generator
losses), every child is scored by

    fitness = quality + lambda * diversity
    quality   = E_z[ D(G(z)) ]                       (D(x) = sigmoid(logit): the mean "real" probability)
    diversity = -log || grad_D L_D(x_real, G(z)) ||   (a small gradient: D is not about to over-fit)

and the fittest child (weights and optimizer state) replaces the parent. The discriminator step is the
configured one (``loss.kind``); ``L_D`` in the diversity term is that same D loss.

All children see the same latents, the same random stream (noise inputs, style mixing) and the same
discriminator state (its buffers are restored), so they differ only by their mutation.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import rng_state, set_rng_state
from .losses import discriminator_loss


def _minimax(logits: torch.Tensor) -> torch.Tensor:  # E[log(1 - D(G(z)))]
    return -F.softplus(logits).mean()


def _nonsaturating(logits: torch.Tensor) -> torch.Tensor:  # -E[log D(G(z))]
    return F.softplus(-logits).mean()


def _least_squares(logits: torch.Tensor) -> torch.Tensor:  # E[(D(G(z)) - 1)^2]
    return (torch.sigmoid(logits) - 1.0).square().mean()


MUTATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "minimax": _minimax,
    "nonsaturating": _nonsaturating,
    "least_squares": _least_squares,
}


@dataclass
class Evolution:
    best: str
    loss_g: torch.Tensor  # the winning mutation's loss (detached)
    fitness: dict[str, float]
    quality: dict[str, float]
    diversity: dict[str, float]


@contextlib.contextmanager
def frozen_buffers(module: nn.Module) -> Iterator[None]:
    """Run with ``module``'s buffers (BN statistics, spectral-norm vectors) restored afterwards."""
    saved = [b.detach().clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, s in zip(module.buffers(), saved, strict=True):
                b.copy_(s)


def fitness(
    G: nn.Module,
    D: nn.Module,
    z: torch.Tensor,
    y: torch.Tensor | None,
    real: torch.Tensor,
    y_real: torch.Tensor | None,
    d_loss_kind: str,
) -> tuple[float, float]:
    """(quality, diversity) of generator ``G`` against discriminator ``D``; leaves both unchanged."""
    with frozen_buffers(G), frozen_buffers(D):
        with torch.no_grad():
            fake = G(z, y)
        params = [p for p in D.parameters() if p.requires_grad]
        fake_logits = D(fake, y).float()
        loss_d = discriminator_loss(d_loss_kind, D(real, y_real).float(), fake_logits)
        grads = torch.autograd.grad(loss_d, params)
    quality = torch.sigmoid(fake_logits.detach()).mean().item()
    grad_norm = torch.sqrt(sum(g.float().square().sum() for g in grads)).item()
    return quality, -math.log(max(grad_norm, 1e-12))


def evolve_generator(
    G: nn.Module,
    opt_g: torch.optim.Optimizer,
    D: nn.Module,
    z: torch.Tensor,
    y: torch.Tensor | None,
    fit_z: torch.Tensor,
    fit_y: torch.Tensor | None,
    real: torch.Tensor,
    y_real: torch.Tensor | None,
    *,
    d_loss_kind: str,
    diversity_weight: float,
    mutations: tuple[str, ...] = tuple(MUTATIONS),
    augment: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    grad_sync: Callable[[nn.Module], None] | None = None,
    value_sync: Callable[[list[float]], list[float]] | None = None,
) -> Evolution:
    """One E-GAN generator step, in place on ``G`` and ``opt_g``. Children train on (``z``, ``y``) and are
    scored on (``fit_z``, ``fit_y``) against the real batch. ``grad_sync``/``value_sync`` average gradients
    and fitness terms over ranks under DDP (``G`` is the unwrapped module)."""
    g_params = list(G.parameters())
    parent_g = copy.deepcopy(G.state_dict())
    parent_opt = copy.deepcopy(opt_g.state_dict())
    start_rng = rng_state()
    best: tuple[float, str, dict, dict, torch.Tensor] | None = None
    fit, qual, div = {}, {}, {}
    with frozen_buffers(D):
        for name in mutations:
            G.load_state_dict(parent_g)
            # A copy: load_state_dict keeps the given tensors, and Adam's step updates them in place.
            opt_g.load_state_dict(copy.deepcopy(parent_opt))
            set_rng_state(start_rng)
            with autocast():
                loss = MUTATIONS[name](D(augment(G(z, y)), y).float())
            opt_g.zero_grad(set_to_none=True)
            loss.backward(inputs=g_params)  # the child's update needs no D gradients
            if grad_sync is not None:
                grad_sync(G)
            opt_g.step()
            with autocast():
                q, d = fitness(G, D, fit_z, fit_y, real, y_real, d_loss_kind)
            if value_sync is not None:
                q, d = value_sync([q, d])
            f = q + diversity_weight * d
            fit[name], qual[name], div[name] = f, q, d
            if best is None or f > best[0]:
                best = (
                    f,
                    name,
                    copy.deepcopy(G.state_dict()),
                    copy.deepcopy(opt_g.state_dict()),
                    loss.detach(),
                )
    assert best is not None, "E-GAN needs at least one mutation"
    _, name, g_state, opt_state, loss = best
    G.load_state_dict(g_state)
    opt_g.load_state_dict(opt_state)
    return Evolution(best=name, loss_g=loss, fitness=fit, quality=qual, diversity=div)
