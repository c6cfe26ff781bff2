"""The EMA generator: the weight average, its ramp-up, and BatchNorm statistics that match its weights.

An average of weights is a different network from the live one, so the live BatchNorm running statistics
do not fit it (the activations' means and variances move with the weights). ``update_ema`` therefore
averages the parameters and copies only the other buffers (style G's ``w_avg``, fixed noise);
``recalibrate_batchnorm`` re-estimates the BN statistics from the EMA weights themselves: it runs the
BN layers in train mode over seeded fresh latents with a cumulative average (``momentum=None``). The
latents come from their own generator, so the global RNG (and with it an exact resume) is untouched.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# Latent batches for the BN re-estimate: 32 x batch_size images keeps the statistics' sampling error
# small next to what a weight average moves them by, at the cost of a few forward passes per checkpoint.
RECALIBRATION_BATCHES = 32


def ema_beta(step: int, batch_size: int, decay: float, rampup: float | None) -> float:
    """The EMA decay for the update after G step ``step`` (0-based), as in StyleGAN2-ADA.

    ``decay`` is the per-step decay at full length, i.e. a half-life of ``batch / log2(1/decay)`` images;
    with ``rampup`` the half-life is at most ``rampup`` x the images seen so far, so early on the average
    forgets the random init quickly (the first update copies the live weights).
    """
    if decay == 0.0:
        return 0.0
    if rampup is None:
        return decay
    seen = step * batch_size
    return min(decay, 0.5 ** (batch_size / max(seen * rampup, 1e-8)))


_BN_BUFFERS: weakref.WeakKeyDictionary[nn.Module, frozenset[str]] = weakref.WeakKeyDictionary()


def _batchnorm_buffers(module: nn.Module) -> frozenset[str]:
    """Names of the BN running-stat buffers, computed once per module (the update runs every step)."""
    if module not in _BN_BUFFERS:
        _BN_BUFFERS[module] = frozenset(
            f"{name}.{buf}" if name else buf
            for name, m in module.named_modules()
            if isinstance(m, _BatchNorm)
            for buf, _ in m.named_buffers(recurse=False)
        )
    return _BN_BUFFERS[module]


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = lerp(ema, model, 1 - decay)`` for every parameter in one multi-tensor call (one fused kernel
    per dtype on CUDA instead of a Python loop of launches); the non-BN buffers are copied."""
    ema_params, live = list(ema.parameters()), [p.detach() for p in model.parameters()]
    if len(ema_params) != len(live):
        raise ValueError(f"EMA has {len(ema_params)} parameters, the model {len(live)}")
    if ema_params:
        torch._foreach_lerp_(ema_params, live, 1.0 - decay)
    skip = _batchnorm_buffers(ema)  # set from the EMA weights by recalibrate_batchnorm
    pairs = [
        (be, bm)
        for (name, be), bm in zip(ema.named_buffers(), model.buffers(), strict=True)
        if name not in skip
    ]
    if pairs:
        torch._foreach_copy_([be for be, _ in pairs], [bm for _, bm in pairs])


@torch.no_grad()
def recalibrate_batchnorm(
    generator: nn.Module, batch_size: int, seed: int, batches: int = RECALIBRATION_BATCHES
) -> None:
    """Set every BN layer's running statistics to those of ``generator``'s own weights (see the module doc).

    Only the BN layers run in train mode (so style mixing, ``w_avg`` and the like stay as they are); the
    generator is left in eval mode. A generator without BN is left untouched.
    """
    norms = [m for m in generator.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms:
        return
    device = next(generator.parameters()).device
    generator.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
        m.train()
    try:
        for i in range(batches):
            z, y = generator.sample_inputs(batch_size, seed=seed * 1_000_003 + i, device=device)
            generator(z, y)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        generator.eval()
