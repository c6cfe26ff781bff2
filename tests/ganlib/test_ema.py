"""The EMA generator: BatchNorm statistics that belong to its own weights, and the StyleGAN2-ADA ramp-up."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from ganlib_helpers import digits_split, tiny_config
from torch import nn

from ganlib.ema import RECALIBRATION_BATCHES, ema_beta, recalibrate_batchnorm, update_ema
from ganlib.training import train


def batch_stats(generator: nn.Module, z: torch.Tensor, y: torch.Tensor | None) -> dict[str, tuple]:
    """Per BN layer: the mean and unbiased variance of its input when ``generator`` runs on (z, y) in train
    mode (each BN normalising with the batch's own statistics), read by hooks on a copy."""
    g = copy.deepcopy(generator).train()
    g.mixing_prob = 0.0  # (style G only) no style mixing
    seen: dict[str, tuple] = {}

    def hook(name: str):
        def record(_m: nn.Module, inputs: tuple, _out: torch.Tensor) -> None:
            x = inputs[0].double()
            seen[name] = (x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=True))

        return record

    for name, m in g.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(hook(name))
    with torch.no_grad():
        g(z, y)
    return seen


def running_stats(generator: nn.Module) -> dict[str, tuple]:
    return {
        name: (m.running_mean.double(), m.running_var.double())
        for name, m in generator.named_modules()
        if isinstance(m, nn.BatchNorm2d)
    }


def test_recalibration_on_one_batch_equals_that_batch_statistics(tmp_path) -> None:
    """With one batch the cumulative average is that batch's statistics exactly (float tolerance)."""
    result = train(tiny_config(train={"steps": 6}), digits_split(16, n=160), tmp_path, progress=False)
    G = copy.deepcopy(result.generator_ema)
    recalibrate_batchnorm(G, batch_size=64, seed=5, batches=1)
    assert not G.training
    z, y = G.sample_inputs(64, seed=5 * 1_000_003)  # the one batch it drew
    expected = batch_stats(G, z, y)
    got = running_stats(G)
    assert set(got) == set(expected) and len(got) >= 2
    for name in got:
        torch.testing.assert_close(got[name][0], expected[name][0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got[name][1], expected[name][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["dcgan", "sngan"])
def test_trained_ema_has_its_own_batchnorm_statistics(family: str, tmp_path) -> None:
    """After training, the EMA G's BN running stats are what its weights produce on fresh latents (up to
    sampling error), and not the live G's (which they were before: the old update copied them)."""
    # A long average (no ramp-up) and a fast G so the EMA weights are well apart from the live ones.
    train_cfg = {"steps": 30, "checkpoint_every": 30, "lr_g": 5e-3, "ema_decay": 0.97, "ema_rampup": None}
    cfg = tiny_config(model={"family": family}, train=train_cfg)
    result = train(cfg, digits_split(16, n=320), tmp_path, progress=False)
    ema, live = result.generator_ema, result.generator
    z, y = ema.sample_inputs(4096, seed=12345)  # fresh: not the recalibration's latents
    fresh = batch_stats(ema, z, y)
    got, theirs = running_stats(ema), running_stats(live)
    n_recal, live_z = RECALIBRATION_BATCHES * cfg.train.batch_size, []
    for name, (mean, var) in fresh.items():
        # Standard errors of a channel's mean and variance from n_recal and 4096 images (each image gives
        # at least one sample; Gaussian for the variance, so the bound on it is loose by a tail factor).
        se_mean = (var * (1 / n_recal + 1 / 4096)).sqrt()
        se_var = var * math.sqrt(2 / n_recal + 2 / 4096)
        z_ema = max(
            ((got[name][0] - mean) / se_mean).abs().max(), ((got[name][1] - var) / se_var).abs().max()
        )
        z_live = max(
            ((theirs[name][0] - mean) / se_mean).abs().max(), ((theirs[name][1] - var) / se_var).abs().max()
        )
        assert z_ema < 5, (name, float(z_ema))
        live_z.append(float(z_live))
    assert max(live_z) > 10, live_z  # the live statistics miss by twice the bound the EMA meets
    # The checkpoint holds the same statistics.
    saved = torch.load(result.checkpoint, weights_only=True)["generator_ema"]
    for name, (mean, var) in got.items():
        torch.testing.assert_close(saved[f"{name}.running_mean"].double(), mean)
        torch.testing.assert_close(saved[f"{name}.running_var"].double(), var)


def test_update_averages_weights_and_leaves_batchnorm_statistics() -> None:
    model, ema = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([1.0, 3.0]))
        ema.weight.copy_(torch.tensor([0.0, 1.0]))
        model.running_mean.fill_(5.0)
    update_ema(ema, model, decay=0.9)
    torch.testing.assert_close(ema.weight.data, torch.tensor([0.1, 1.2]))  # 0.9 * ema + 0.1 * model
    torch.testing.assert_close(ema.running_mean, torch.zeros(2))  # not the live model's


def test_other_buffers_still_follow_the_live_model() -> None:
    model, ema = nn.Module(), nn.Module()
    model.register_buffer("w_avg", torch.full((3,), 2.0))
    ema.register_buffer("w_avg", torch.zeros(3))
    update_ema(ema, model, decay=0.5)
    torch.testing.assert_close(ema.w_avg, torch.full((3,), 2.0))


@pytest.mark.parametrize(
    ("step", "batch", "decay", "rampup"),
    [(0, 64, 0.995, 0.05), (1, 64, 0.995, 0.05), (100, 64, 0.995, 0.05), (5000, 64, 0.995, 0.05),
     (10, 32, 0.999, 0.1), (10, 32, 0.999, None), (3, 16, 0.0, 0.05)],
)  # fmt: skip
def test_ramp_up_matches_stylegan2_ada(step: int, batch: int, decay: float, rampup: float | None) -> None:
    # StyleGAN2-ADA's training loop, with ema_kimg the half-life in kimg that gives ``decay`` per step.
    ema_kimg = batch / math.log2(1 / decay) / 1000 if decay > 0 else 0.0
    ema_nimg = ema_kimg * 1000
    if rampup is not None:
        ema_nimg = min(ema_nimg, step * batch * rampup)
    expected = 0.5 ** (batch / max(ema_nimg, 1e-8))
    assert ema_beta(step, batch, decay, rampup) == pytest.approx(expected, rel=1e-12, abs=1e-300)


def test_ramp_up_copies_first_and_reaches_the_decay() -> None:
    assert ema_beta(0, 64, 0.995, 0.05) == 0.0
    betas = [ema_beta(s, 64, 0.995, 0.05) for s in range(0, 5000, 50)]
    assert betas == sorted(betas) and betas[-1] == 0.995


def test_multi_tensor_update_equals_the_per_parameter_formula() -> None:
    # A real generator (BN + convs): every parameter moves exactly as ema + (1 - decay) * (model - ema).
    from ganlib.models import ModelSpec, build_generator

    torch.manual_seed(0)
    ema, model = (build_generator(ModelSpec("dcgan", 16, 1, 8, 3, 8, 8)) for _ in range(2))
    before = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, model, decay=0.7)
    for old, new, live in zip(before, ema.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(new, old + 0.3 * (live - old), rtol=0, atol=1e-7)
