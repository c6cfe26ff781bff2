"""The GAN training loop: read it top to bottom.

``train(cfg, data, out_dir)`` builds G, D and an EMA copy of G from the config, then alternates
``n_critic`` discriminator steps with one generator step. It checkpoints every ``checkpoint_every`` steps
(atomically, weights-only loadable), resumes exactly from ``out_dir/checkpoint.pt``, and stops with
``NonFiniteLossError`` on a NaN/inf loss without touching the last good checkpoint.

Data order is a seeded permutation per epoch, indexed by the global batch counter, so a resumed run sees
exactly the batches a straight run would have seen.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .augment import diff_augment
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import GANConfig
from .data.shards import Split
from .losses import discriminator_loss, generator_loss, gradient_penalty, r1_penalty
from .models import ModelSpec, build_discriminator, build_generator


class NonFiniteLossError(RuntimeError):
    """Training diverged: a loss became NaN or inf. The last good checkpoint is kept as it was."""


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    device: str
    images_per_sec: float
    resumed_from: int
    history: dict[str, list[float]] = field(default_factory=dict)


def select_device(requested: str = "auto") -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def model_spec_for(cfg: GANConfig, data: Split) -> ModelSpec:
    _, channels, height, width = data.images.shape
    if height != width:
        raise ValueError(f"training needs square images, got {height}x{width}")
    conditional = cfg.model.conditional
    if conditional is True and data.labels is None:
        raise ValueError("model.conditional is true but the dataset has no labels; set it to auto or false")
    num_classes = data.num_classes if (conditional is True or (conditional == "auto" and data.labels is not None)) else 0
    return ModelSpec(
        family=cfg.model.family,
        resolution=height,
        channels=channels,
        z_dim=cfg.model.z_dim,
        num_classes=num_classes,
        g_width=cfg.model.g_width,
        d_width=cfg.model.d_width,
    )


def epoch_batches(n: int, batch_size: int, seed: int, start_batch: int) -> Iterator[torch.Tensor]:
    """Index batches from a fresh seeded permutation each epoch, starting at global batch ``start_batch``."""
    per_epoch = max(n // batch_size, 1)  # drop the ragged tail so every batch has the same size
    b = start_batch
    while True:
        epoch, i = divmod(b, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        for j in range(i, per_epoch):
            yield perm[j * batch_size : (j + 1) * batch_size]
            b += 1


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div_(127.5).sub_(1.0)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(pm.detach(), 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)  # BatchNorm running stats follow the live model


def train(
    cfg: GANConfig,
    data: Split,
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    tc, lc = cfg.train, cfg.loss
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / "checkpoint.pt"
    device = select_device(tc.device)
    on_cuda = device.type == "cuda"

    # --- models, optimisers (TTUR: separate learning rates) ---
    torch.manual_seed(tc.seed)
    spec = model_spec_for(cfg, data)
    G = build_generator(spec).to(device)
    D = build_discriminator(spec).to(device)
    if on_cuda and tc.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=tc.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr_d, betas=tc.betas)

    # --- resume ---
    start_step, history = 0, {"loss_d": [], "loss_g": [], "step": []}
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path, map_location=device)
        if state["model_spec"] != spec.to_dict():
            raise ValueError(f"{ckpt_path} was trained with a different model ({state['model_spec']}); use a new out_dir")
        G.load_state_dict(state["generator"])
        D.load_state_dict(state["discriminator"])
        G_ema.load_state_dict(state["generator_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        set_rng_state(state["rng"])
        start_step, history = int(state["step"]), json.loads(state["history"])

    # --- data: uint8 on the device once (small data), batches by seeded permutation ---
    images = torch.from_numpy(np.ascontiguousarray(data.images)).to(device)
    labels = torch.from_numpy(data.labels).to(device) if spec.num_classes else None
    batches = epoch_batches(len(images), tc.batch_size, tc.seed, start_batch=start_step * tc.n_critic)
    G_step, D_step = G, D
    if tc.compile:
        G_step, D_step = torch.compile(G), torch.compile(D)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.precision) if on_cuda else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)

    def autocast():
        return torch.autocast("cuda", dtype=amp_dtype, enabled=amp_dtype is not None) if on_cuda else _null()

    def augment(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, tc.diffaugment) if tc.diffaugment else x

    def save(step: int) -> None:
        for name, module in (("generator", G), ("discriminator", D)):
            if not all(torch.isfinite(p).all() for p in module.parameters()):
                raise NonFiniteLossError(f"step {step}: {name} weights are not finite; kept the last good checkpoint")
        save_checkpoint(
            {
                "step": step,
                "model_spec": spec.to_dict(),
                "config": cfg.model_dump_json(),
                "generator": G.state_dict(),
                "discriminator": D.state_dict(),
                "generator_ema": G_ema.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "rng": rng_state(),
                "history": json.dumps(history),
            },
            ckpt_path,
        )

    bar = _progress(start_step, tc.steps, enabled=progress)
    t0, seen = time.perf_counter(), 0
    G.train(), D.train()
    for step in range(start_step, tc.steps):
        # --- discriminator: n_critic steps ---
        for _ in range(tc.n_critic):
            idx = next(batches).to(device)
            real = to_model_range(images[idx])
            y = labels[idx] if labels is not None else None
            z = torch.randn(len(idx), spec.z_dim, device=device)
            if lc.r1_gamma > 0:
                real.requires_grad_(True)
            with autocast():
                fake = G_step(z, y).detach()
                real_logits = D_step(augment(real), y)
                fake_logits = D_step(augment(fake), y)
                loss_d = discriminator_loss(lc.kind, real_logits.float(), fake_logits.float(), lc.label_smoothing)
            if lc.kind == "wgan_gp":
                loss_d = loss_d + lc.gp_weight * gradient_penalty(D_step, real, fake, y)
            if lc.r1_gamma > 0:
                loss_d = loss_d + 0.5 * lc.r1_gamma * r1_penalty(real_logits.float(), real)
            _check_finite(loss_d, "discriminator", step, ckpt_path)
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(loss_d).backward()
            scaler.step(opt_d)
            seen += len(idx)

        # --- generator ---
        z = torch.randn(tc.batch_size, spec.z_dim, device=device)
        y = labels[torch.randint(len(labels), (tc.batch_size,), device=device)] if labels is not None else None
        with autocast():
            loss_g = generator_loss(lc.kind, D_step(augment(G_step(z, y)), y).float())
        _check_finite(loss_g, "generator", step, ckpt_path)
        opt_g.zero_grad(set_to_none=True)
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)
        scaler.update()
        # EMA warm-up: early on the average would mostly hold the random init, so ramp the decay.
        update_ema(G_ema, G, min(tc.ema_decay, (1 + step) / (10 + step)))

        # --- bookkeeping ---
        if (step + 1) % tc.log_every == 0 or step + 1 == tc.steps:
            ld, lg = loss_d.item(), loss_g.item()
            history["step"].append(step + 1)
            history["loss_d"].append(ld)
            history["loss_g"].append(lg)
            rate = seen / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}", img_s=f"{rate:.0f}")
            if on_log:
                on_log(step + 1, {"loss_d": ld, "loss_g": lg, "images_per_sec": rate})
        if (step + 1) % tc.checkpoint_every == 0 or step + 1 == tc.steps:
            save(step + 1)
        bar.update(1)
    bar.close()
    if start_step >= tc.steps and not ckpt_path.is_file():
        save(start_step)

    return TrainResult(
        checkpoint=ckpt_path,
        steps=tc.steps,
        device=str(device),
        images_per_sec=seen / max(time.perf_counter() - t0, 1e-9),
        resumed_from=start_step,
        history=history,
    )


def _check_finite(loss: torch.Tensor, which: str, step: int, ckpt: Path) -> None:
    if not torch.isfinite(loss):
        kept = f"the last good checkpoint {ckpt} is kept" if ckpt.is_file() else "no checkpoint was written yet"
        raise NonFiniteLossError(
            f"training diverged at step {step}: the {which} loss is {float(loss)}; {kept}. "
            "Lower the learning rates, or try loss.kind=hinge or a gradient penalty."
        )


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(start: int, total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not enabled, desc="train", unit="step", dynamic_ncols=True)
