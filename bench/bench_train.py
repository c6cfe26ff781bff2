"""Training step: ganlib's trainer vs a bare PyTorch DCGAN loop (the PyTorch examples loop) on the same
model, loss, data and batch size, measured in the same process.

Per-step time is taken as (T(2K) - T(K)) / K for each, so model construction, data upload and the final
checkpoint cancel out and only the steady-state step is compared. Target: ours <= 1.05x the bare loop.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from ganlib.config import parse_config
from ganlib.data.shards import Split
from ganlib.data.sources import digits_images
from ganlib.models import build_discriminator, build_generator
from ganlib.training import model_spec_for, train


def digits_split(resolution: int = 32) -> Split:
    images, labels = digits_images()
    x = torch.from_numpy(images).float()[:, None]
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return Split(
        images=x.round().clamp(0, 255).to(torch.uint8).numpy(),
        labels=labels,
        meta={"class_names": [str(i) for i in range(10)]},
    )


def _config(steps: int, batch_size: int):
    return parse_config(
        {
            "model": {"g_width": 32, "d_width": 32, "z_dim": 64, "conditional": False},
            "train": {
                "steps": steps,
                "batch_size": batch_size,
                "checkpoint_every": 10**9,
                "log_every": 10**9,
                "device": "cpu",
            },
        }
    )


def time_ours(steps: int, batch_size: int, data: Split, tmp: str) -> float:
    t0 = time.perf_counter()
    train(_config(steps, batch_size), data, tmp, resume=False, progress=False)
    return time.perf_counter() - t0


def time_bare(steps: int, batch_size: int, data: Split) -> float:
    """The PyTorch examples DCGAN loop, written out: D on real+fake with BCE, then G with BCE."""
    t0 = time.perf_counter()
    cfg = _config(steps, batch_size)
    torch.manual_seed(0)
    spec = model_spec_for(cfg, data)
    g, d = build_generator(spec), build_discriminator(spec)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    images = torch.from_numpy(np.ascontiguousarray(data.images))
    n = len(images)
    perm, pos = torch.randperm(n), 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm, pos = torch.randperm(n), 0
        real = images[perm[pos : pos + batch_size]].float() / 127.5 - 1
        pos += batch_size
        z = torch.randn(batch_size, spec.z_dim)
        fake = g(z)
        out_real, out_fake = d(real), d(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(
            out_real, torch.ones_like(out_real)
        ) + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        out = d(fake)
        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    return time.perf_counter() - t0


def run(k: int = 40, batch_size: int = 64, repeats: int = 3) -> dict:
    import tempfile

    data = digits_split()
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        time_ours(5, batch_size, data, tmp + "/warm")  # warm-up: allocator, kernels
        for r in range(repeats):  # interleaved, so machine noise hits both alike
            ours.append(
                (
                    time_ours(2 * k, batch_size, data, f"{tmp}/a{r}")
                    - time_ours(k, batch_size, data, f"{tmp}/b{r}")
                )
                / k
            )
            bare.append((time_bare(2 * k, batch_size, data) - time_bare(k, batch_size, data)) / k)
    o, b = float(np.median(ours)), float(np.median(bare))
    return {
        "benchmark": "training step (DCGAN 32px, digits, CPU, batch 64)",
        "ours": f"{o * 1e3:.1f} ms/step",
        "reference": f"{b * 1e3:.1f} ms/step (bare PyTorch loop)",
        "ratio": o / b,
        "target": "<= 1.05x",
    }


if __name__ == "__main__":
    r = run()
    print(
        f"{r['benchmark']}: ours {r['ours']}, reference {r['reference']}, ratio {r['ratio']:.3f}x (target {r['target']})"
    )
