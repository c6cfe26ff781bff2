"""A same-budget peer benchmark: torch-mimicry's cGAN-PD at 32 px, reimplemented, vs our default config.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.peer_mimicry --root /tmp/ema-bench --cpu-seconds 600

The peer is torch-mimicry's ``CGANPDGenerator32`` / ``CGANPDDiscriminator32`` (Miyato & Koyama 2018) and its
trainer's recipe, written out here so nothing is downloaded: G = linear z (128) -> 4x4x256, three residual
up-blocks (conditional BN -> ReLU -> 2x nearest -> 3x3 conv, twice, plus a 1x1 skip), BN -> ReLU -> 3x3 conv
-> tanh; D = spectrally normalised ResNet (an "optimized" first block, three more blocks, 128 channels),
ReLU, global sum pooling, a linear output plus the class-embedding projection; hinge loss, n_dis 5,
Adam(2e-4, betas 0.0 / 0.9) for both nets, learning rate decayed linearly to 0, batch 64, Xavier init.
Both runs train on the same processed digits split for the same process CPU-seconds (each stops at the
first step past the budget) and are scored by the pipeline's scorer (``ganlib.scoring``: same backbone,
reference, n and seeds). Printed: one JSON line per run and the ratio FID ours / FID peer (< 1: ours ahead).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from ganlib.models.base import Generator, ModelSpec

NZ, NGF, NDF, BATCH, N_DIS = 128, 256, 128, 64, 5


class _CBN(nn.Module):
    def __init__(self, ch: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(ch, affine=False)
        self.gamma, self.beta = nn.Embedding(num_classes, ch), nn.Embedding(num_classes, ch)
        nn.init.ones_(self.gamma.weight), nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.gamma(y)[:, :, None, None] * self.bn(x) + self.beta(y)[:, :, None, None]


class _GBlock(nn.Module):
    def __init__(self, ch: int, num_classes: int) -> None:
        super().__init__()
        self.b1, self.b2 = _CBN(ch, num_classes), _CBN(ch, num_classes)
        self.c1, self.c2 = nn.Conv2d(ch, ch, 3, 1, 1), nn.Conv2d(ch, ch, 3, 1, 1)
        self.sc = nn.Conv2d(ch, ch, 1)
        for c in (self.c1, self.c2):
            nn.init.xavier_uniform_(c.weight, math.sqrt(2.0))
        nn.init.xavier_uniform_(self.sc.weight, 1.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.b1(x, y)), scale_factor=2)
        h = self.c2(F.relu(self.b2(self.c1(h), y)))
        return h + self.sc(F.interpolate(x, scale_factor=2))


class PeerGenerator(Generator):
    """mimicry's CGANPDGenerator32 (ngf 256, bottom width 4), for ``channels`` image channels."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.spec = ModelSpec("mimicry-cganpd", 32, channels, NZ, num_classes, NGF, NDF)
        self.l1 = nn.Linear(NZ, 16 * NGF)
        self.blocks = nn.ModuleList(_GBlock(NGF, num_classes) for _ in range(3))
        self.b5, self.c5 = nn.BatchNorm2d(NGF), nn.Conv2d(NGF, channels, 3, 1, 1)
        nn.init.xavier_uniform_(self.l1.weight, 1.0), nn.init.xavier_uniform_(self.c5.weight, 1.0)

    def forward(self, z: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        h = self.l1(z).view(-1, NGF, 4, 4)
        for block in self.blocks:
            h = block(h, class_id)
        return torch.tanh(self.c5(F.relu(self.b5(h))))


def _sn_conv(i: int, o: int, k: int, gain: float) -> nn.Module:
    conv = nn.Conv2d(i, o, k, 1, k // 2)
    nn.init.xavier_uniform_(conv.weight, gain)
    return spectral_norm(conv)


class _DBlock(nn.Module):
    def __init__(self, i: int, o: int, down: bool, optimized: bool = False) -> None:
        super().__init__()
        self.c1, self.c2 = _sn_conv(i, o, 3, math.sqrt(2.0)), _sn_conv(o, o, 3, math.sqrt(2.0))
        self.sc = _sn_conv(i, o, 1, 1.0) if (i != o or down) else None
        self.down, self.optimized = down, optimized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c2(F.relu(self.c1(x if self.optimized else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.sc is not None:  # optimized block: pool, then 1x1; others: 1x1, then pool
            s = self.sc(F.avg_pool2d(x, 2)) if self.optimized else self.sc(x)
            if self.down and not self.optimized:
                s = F.avg_pool2d(s, 2)
        return h + s


class PeerDiscriminator(nn.Module):
    """mimicry's CGANPDDiscriminator32 (ndf 128): projection discriminator with spectral norm."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            _DBlock(channels, NDF, down=True, optimized=True),
            _DBlock(NDF, NDF, down=True),
            _DBlock(NDF, NDF, down=False),
            _DBlock(NDF, NDF, down=False),
        )
        self.l5 = nn.Linear(NDF, 1)
        self.embed = nn.Embedding(num_classes, NDF)
        nn.init.xavier_uniform_(self.l5.weight, 1.0), nn.init.xavier_uniform_(self.embed.weight, 1.0)
        self.l5, self.embed = spectral_norm(self.l5), spectral_norm(self.embed)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        return self.l5(h).squeeze(1) + (self.embed(y) * h).sum(1)


def train_peer(
    images: torch.Tensor, labels: torch.Tensor, cpu_seconds: float, seed: int = 0, batch: int = BATCH
) -> dict:
    """mimicry's training loop for ``cpu_seconds`` of process time; the lr decays linearly over the steps
    the budget allows, estimated from the first 5 steps (mimicry decays over its fixed num_steps)."""
    torch.manual_seed(seed)
    num_classes = int(labels.max()) + 1
    G, D = PeerGenerator(images.shape[1], num_classes), PeerDiscriminator(images.shape[1], num_classes)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.0, 0.9))
    start, step, planned = time.process_time(), 0, None
    while time.process_time() - start < cpu_seconds:
        if step == 5:
            planned = max(6, int(cpu_seconds / ((time.process_time() - start) / 5)))
        frac = 1.0 - step / planned if planned else 1.0
        for opt in (opt_g, opt_d):
            for group in opt.param_groups:
                group["lr"] = 2e-4 * max(frac, 0.0)
        for i in range(N_DIS):
            idx = torch.randint(len(images), (batch,))
            real, y = images[idx], labels[idx]
            z, y_fake = torch.randn(batch, NZ), torch.randint(num_classes, (batch,))
            with torch.no_grad():
                fake = G(z, y_fake)
            loss_d = F.relu(1.0 - D(real, y)).mean() + F.relu(1.0 + D(fake, y_fake)).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            if i == N_DIS - 1:
                z, y_fake = torch.randn(batch, NZ), torch.randint(num_classes, (batch,))
                loss_g = -D(G(z, y_fake), y_fake).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward(inputs=list(G.parameters()))
                opt_g.step()
        step += 1
    return {"generator": G.eval(), "steps": step, "cpu_s": time.process_time() - start}


def main() -> None:
    from bench.ema_effect import prepare
    from ganlib.config import load_config, parse_overrides
    from ganlib.data.shards import load_split
    from ganlib.models import load_generator
    from ganlib.pixels import to_model_range
    from ganlib.scoring import score_generator
    from ganlib.training import train

    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--cpu-seconds", type=float, default=600.0)
    ap.add_argument("overrides", nargs="*", help="overrides of configs/default.yaml for our run")
    args = ap.parse_args()
    cfg = load_config("default", parse_overrides([*args.overrides, "train.device=cpu"]))
    processed, backbone, ref = prepare(args.root, cfg)
    split = load_split(processed, "train")
    images = to_model_range(torch.from_numpy(np.asarray(split.images)).float())  # 1.4k digits: in RAM
    labels = torch.from_numpy(split.labels).long()

    peer = train_peer(images, labels, args.cpu_seconds)
    # Ours: the same budget, through the project's trainer (steps estimated from a 50-step probe).
    probe_dir = args.root / "runs" / "peer-probe"
    t0 = time.process_time()
    train(cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": 50})}), split, probe_dir,
          resume=False, progress=False)  # fmt: skip
    per_step = (time.process_time() - t0) / 50
    steps = max(1, int(args.cpu_seconds / per_step))
    t0 = time.process_time()
    ours = train(cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": steps})}), split,
                 args.root / "runs" / f"ours-{steps}", resume=False, progress=False)  # fmt: skip
    ours_cpu = time.process_time() - t0

    keep = ("fid", "fid_ci", "precision", "recall", "label")
    scores = {}
    for name, g, n, cpu in (("peer cGAN-PD (mimicry recipe)", peer["generator"], peer["steps"], peer["cpu_s"]),
                            ("ours (configs/default.yaml)", load_generator(ours.checkpoint, ema=True), steps,
                             ours_cpu)):  # fmt: skip
        s = score_generator(g, backbone, ref, cfg.eval, "bench.dir", "cpu")
        scores[name] = s
        print(json.dumps({"run": name, "steps": n, "cpu_s": round(cpu, 1)} | {k: s.get(k) for k in keep}))
    fid = [s["fid"] for s in scores.values()]
    print(json.dumps({"fid_ours_over_peer": fid[1] / fid[0]}))


if __name__ == "__main__":
    main()
