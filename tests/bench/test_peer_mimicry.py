"""bench/peer_mimicry.py: the peer's networks have mimicry's cGAN-PD 32 shapes and its loop runs on a budget."""

from __future__ import annotations

import torch

from bench.peer_mimicry import NDF, NGF, PeerDiscriminator, PeerGenerator, train_peer


def test_peer_networks_have_the_published_layout() -> None:
    g, d = PeerGenerator(1, 10), PeerDiscriminator(1, 10)
    z, y = g.sample_inputs(4, seed=0)
    x = g(z, y)
    assert x.shape == (4, 1, 32, 32) and x.abs().max() <= 1
    assert g.l1.out_features == 16 * NGF and len(g.blocks) == 3  # 4 -> 8 -> 16 -> 32
    assert d(x, y).shape == (4,)
    spectral = [m for m in d.modules() if hasattr(m, "weight_orig")]
    assert len(spectral) == 2 * 4 + 2 + 2  # two convs per block, the two shortcut convs, linear, embedding
    assert d.l5.in_features == NDF


def test_the_loop_stops_at_its_cpu_budget() -> None:
    torch.manual_seed(0)
    images, labels = torch.rand(16, 1, 32, 32) * 2 - 1, torch.arange(16) % 10
    out = train_peer(images, labels, cpu_seconds=0.5, batch=2)
    assert out["steps"] >= 1 and out["cpu_s"] >= 0.5
    assert torch.isfinite(out["generator"](*out["generator"].sample_inputs(2, seed=1))).all()
