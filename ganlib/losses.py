"""Adversarial losses and regularisers, written from the papers' formulas, and the two objectives the
training loop minimises, composed from them as the config asks.

The losses take raw discriminator logits (no sigmoid applied); every function returns a scalar tensor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig

LOSS_KINDS = ("nonsaturating", "minimax", "hinge", "wgan_gp", "lsgan")


def discriminator_loss(
    kind: str, real: torch.Tensor, fake: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """D's loss on real and fake logits. ``label_smoothing`` is one-sided (Salimans et al.): real target 1-s."""
    if kind in ("nonsaturating", "minimax"):
        target_real = torch.full_like(real, 1.0 - label_smoothing)
        return F.binary_cross_entropy_with_logits(real, target_real) + F.binary_cross_entropy_with_logits(
            fake, torch.zeros_like(fake)
        )
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan_gp":
        return fake.mean() - real.mean()
    if kind == "lsgan":  # Mao et al.: a=0 (fake), b=1 (real)
        return 0.5 * ((real - (1.0 - label_smoothing)) ** 2).mean() + 0.5 * (fake**2).mean()
    raise ValueError(f"unknown loss kind '{kind}'; known: {LOSS_KINDS}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """G's loss on the logits D gives its samples."""
    if kind == "nonsaturating":  # -log D(G(z))
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "minimax":  # log(1 - D(G(z))), the original saturating game
        return -F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if kind in ("hinge", "wgan_gp"):
        return -fake.mean()
    if kind == "lsgan":  # c = 1
        return 0.5 * ((fake - 1.0) ** 2).mean()
    raise ValueError(f"unknown loss kind '{kind}'; known: {LOSS_KINDS}")


def gradient_penalty(
    discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, class_id: torch.Tensor | None = None
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al.): E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = discriminator(x_hat, class_id)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E[||grad D(x)||^2] on real data; multiply by gamma/2 outside.

    ``real`` must have had ``requires_grad_(True)`` before D was applied.
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Mao et al. 2019 (MSGAN): 1 / (mean|G(z1)-G(z2)| / mean|z1-z2|) over the batch's two halves, which
    share their class ids; minimising it pushes samples of one class apart as their latents differ."""
    half = fake.size(0) // 2
    ratio = (fake[:half] - fake[half : 2 * half]).abs().mean() / (z[:half] - z[half : 2 * half]).abs().mean()
    return 1.0 / (ratio + eps)


def paired_labels(y: torch.Tensor | None) -> torch.Tensor | None:
    """Class ids whose second half repeats the first, the pairs ``mode_seeking_loss`` compares."""
    if y is None:
        return None
    half = y.size(0) // 2
    return torch.cat([y[:half], y[:half], y[2 * half :]])


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Salimans et al. 2016: ||E f(x) - E f(G(z))||_2^2 on D's intermediate features f (real side detached)."""
    return (real_features.detach().mean(0) - fake_features.mean(0)).square().sum()


# --- the objectives the training loop minimises, composed from the configured terms (stylegan2-ada keeps
# these out of the loop too) ---------------------------------------------------------------------------------

Autocast = Callable[[], contextlib.AbstractContextManager]
Augment = Callable[[torch.Tensor], torch.Tensor]


def discriminator_objective(
    lc: LossConfig,
    D: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    y: torch.Tensor | None,
    augment: Augment,
    autocast: Autocast,
) -> torch.Tensor:
    """D's loss on a real and a fake batch: the adversarial term (under autocast), plus the gradient
    penalty (wgan_gp) and R1 in full precision. ``real`` must require grad when ``lc.r1_gamma > 0``."""
    with autocast():
        real_logits = D(augment(real), y)
        fake_logits = D(augment(fake), y)
        loss = discriminator_loss(lc.kind, real_logits.float(), fake_logits.float(), lc.label_smoothing)
    if lc.kind == "wgan_gp":
        loss = loss + lc.gp_weight * gradient_penalty(D, real, fake, y)
    if lc.r1_gamma > 0:
        loss = loss + 0.5 * lc.r1_gamma * r1_penalty(real_logits.float(), real)
    return loss


def generator_objective(
    lc: LossConfig,
    D: nn.Module,
    fake: torch.Tensor,
    y_fake: torch.Tensor | None,
    real: torch.Tensor,
    y_real: torch.Tensor | None,
    augment: Augment,
    autocast: Autocast,
    z: torch.Tensor | None = None,
) -> torch.Tensor:
    """G's loss on a fake batch: the adversarial term, plus Salimans' feature matching against ``real``
    and the mode-seeking term on ``z`` (whose halves drew ``fake``'s halves, with paired class ids)."""
    with autocast():
        fake_logits, fake_feats = D(augment(fake), y_fake, return_features=True)
        loss = generator_loss(lc.kind, fake_logits.float())
        if lc.feature_matching > 0:
            with torch.no_grad():
                _, real_feats = D(augment(real), y_real, return_features=True)
            loss = loss + lc.feature_matching * feature_matching_loss(real_feats.float(), fake_feats.float())
    if lc.mode_seeking > 0:
        if z is None:
            raise ValueError("mode_seeking needs the latents that drew the fake batch")
        loss = loss + lc.mode_seeking * mode_seeking_loss(fake.float(), z)
    return loss
