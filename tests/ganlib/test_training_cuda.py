"""The GPU paths of the training loop: autocast (bf16, fp16 with the loss scaler), channels_last,
torch.compile and E-GAN on CUDA. Skipped where there is no CUDA device (CI)."""

from __future__ import annotations

import pytest
import torch
from ganlib_helpers import digits_split, tiny_config

from ganlib.models import load_generator
from ganlib.training import train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("family", ["dcgan", "sngan", "stylegan_lite"])
@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_autocast_and_channels_last(family: str, precision: str, tmp_path) -> None:
    cfg = tiny_config(
        model={"family": family},
        loss={"r1_gamma": 0.1, "feature_matching": 0.1},
        train={
            "device": "auto",
            "precision": precision,
            "channels_last": True,
            "steps": 6,
            "diffaugment": ["translation"],
        },
    )
    result = train(cfg, digits_split(32, n=256), tmp_path, progress=False)
    assert result.device.startswith("cuda")
    assert all(
        torch.isfinite(torch.tensor(v)).all() for v in result.history["loss_d"] + result.history["loss_g"]
    )
    state = torch.load(result.checkpoint, weights_only=True, map_location="cpu")
    if precision == "fp16":
        assert state["scaler"]["scale"] > 0
    G = load_generator(result.checkpoint)  # CPU, float32, from a CUDA-trained checkpoint
    z, y = G.sample_inputs(2, seed=0)
    assert torch.isfinite(G(z, y)).all()


def test_wgan_gp_and_egan_on_cuda(tmp_path) -> None:
    data = digits_split(32, n=256)
    for name, sections in {
        "wgan": dict(model={"family": "sngan", "d_spectral_norm": False}, loss={"kind": "wgan_gp"}),
        "egan": dict(model={"family": "stylegan_lite"}, loss={"strategy": "egan"}),
    }.items():
        cfg = tiny_config(**sections, train={"device": "cuda", "precision": "bf16", "steps": 4})
        result = train(cfg, data, tmp_path / name, progress=False)
        assert torch.isfinite(torch.tensor(result.history["loss_g"])).all()


@pytest.mark.parametrize("family", ["dcgan", "sngan", "stylegan_lite"])
def test_compile(family: str, tmp_path) -> None:
    cfg = tiny_config(model={"family": family}, train={"device": "cuda", "compile": True, "steps": 4})
    result = train(cfg, digits_split(32, n=256), tmp_path, progress=False)
    assert torch.isfinite(torch.tensor(result.history["loss_g"])).all()


def test_cuda_resume_continues(tmp_path) -> None:
    """Resume on CUDA restores the CUDA RNG too; cuDNN is not bitwise deterministic, so only close
    (4e-5 measured on an H100)."""
    data = digits_split(32, n=256)
    full = tiny_config(train={"device": "cuda", "precision": "fp32", "channels_last": False, "steps": 4})
    half = tiny_config(train={"device": "cuda", "precision": "fp32", "channels_last": False, "steps": 2})
    a = train(full, data, tmp_path / "a", progress=False)
    train(half, data, tmp_path / "b", progress=False)
    b = train(full, data, tmp_path / "b", progress=False)
    sa = torch.load(a.checkpoint, weights_only=True)["generator"]
    sb = torch.load(b.checkpoint, weights_only=True)["generator"]
    assert max((sa[k].float() - sb[k].float()).abs().max().item() for k in sa) < 1e-4
