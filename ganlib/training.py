"""The GAN training loop: read it top to bottom.

``train(cfg, data, out_dir)`` builds G, D and an EMA copy of G from the config, then alternates
``n_critic`` discriminator steps with one generator step (or one E-GAN evolution step, ``loss.strategy:
egan``). It checkpoints every ``checkpoint_every`` steps (atomically, weights-only loadable), resumes
exactly from ``out_dir/checkpoint.pt``, and stops with ``NonFiniteLossError`` on a NaN/inf loss without
touching the last good checkpoint. The losses are checked on the device every step and read back on the
host every ``FINITE_CHECK_EVERY`` steps and before every checkpoint (no sync per step): the error names the
first step whose loss went non-finite, training stops within ``FINITE_CHECK_EVERY`` steps of it, and no
checkpoint is ever written from a diverged run.

Data order is a seeded permutation per epoch, indexed by the global batch counter, so a resumed run sees
exactly the batches a straight run would have seen. Each step's batch is gathered by index from the
memory-mapped shards (never a copy of the whole set, so RAM stays flat in the dataset size): in this
process with ``train.num_workers = 0``, by torch DataLoader workers (same batches) with ``num_workers > 0``.

Distributed: when ``torch.distributed`` is initialised (``ganlib.train_cli`` under torchrun does it), G
and D are wrapped in DDP, each rank trains on its own disjoint slice of every global batch (so
``batch_size`` stays the global batch size), and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .augment import diff_augment
from .checkpoint import (
    TrainingModules,
    remove_stale_temps,
    restore_training,
    rng_state,
    save_checkpoint,
    training_state,
)
from .config import GANConfig
from .data.shards import Split
from .devices import select_device
from .egan import evolve_generator
from .ema import ema_beta, recalibrate_batchnorm, update_ema
from .losses import discriminator_objective, generator_objective, paired_labels
from .models import ModelSpec, build_discriminator, build_generator
from .pixels import to_model_range


class NonFiniteLossError(RuntimeError):
    """Training diverged: a loss became NaN or inf. The last good checkpoint is kept as it was."""


# Steps between host checks of the non-finite record: a NaN stops training at most this many steps after
# it appeared (and always before a checkpoint), without a device->host sync on every step.
FINITE_CHECK_EVERY = 16
_NONE = 2**62
_LOSS_NAMES = ("discriminator", "generator")


class _FiniteGuard:
    """The first non-finite loss, recorded on the device: ``2 * step + which`` (D before G within a step,
    so the minimum is the first in time) and its value. A handful of tiny kernels per loss, no sync."""

    def __init__(self, device: torch.device) -> None:
        self.code = torch.full((), _NONE, dtype=torch.int64, device=device)
        self.value = torch.zeros((), device=device)

    def record(self, loss: torch.Tensor, step: int, which: int) -> None:
        loss = loss.detach().float()
        new = torch.where(torch.isfinite(loss), _NONE, 2 * step + which)
        self.value = torch.where(new < self.code, loss, self.value)
        self.code = torch.minimum(self.code, new)

    def first_bad(self, world: int) -> tuple[int, str, float] | None:
        code = self.code.clone()
        if world > 1:  # every rank stops at the same check, or the others hang in the next all-reduce
            dist.all_reduce(code, op=dist.ReduceOp.MIN)
        first = int(code.item())
        if first == _NONE:
            return None
        mine = first == int(self.code.item())  # the value is known on the rank that saw it
        return first // 2, _LOSS_NAMES[first % 2], float(self.value.item()) if mine else float("nan")


@dataclass
class TrainResult:
    checkpoint: Path
    steps: int
    device: str
    images_per_sec: float
    resumed_from: int
    history: dict[str, list[float]] = field(default_factory=dict)
    # The live models at the end (this rank's copies), for notebooks and tests; the checkpoint has them too.
    generator: nn.Module | None = field(default=None, repr=False)
    generator_ema: nn.Module | None = field(default=None, repr=False)


def model_spec_for(cfg: GANConfig, data: Split) -> ModelSpec:
    _, channels, height, width = data.images.shape
    if height != width:
        raise ValueError(f"training needs square images, got {height}x{width}")
    cfg.model.check_resolution(height)
    conditional = cfg.model.conditional
    if conditional is True and data.labels is None:
        raise ValueError("model.conditional is true but the dataset has no labels; set it to auto or false")
    num_classes = (
        data.num_classes
        if (conditional is True or (conditional == "auto" and data.labels is not None))
        else 0
    )
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


def rank_batches(
    n: int, batch_size: int, seed: int, start_batch: int, rank: int, world: int
) -> Iterator[torch.Tensor]:
    """This rank's disjoint slice of every global batch."""
    local = batch_size // world
    for idx in epoch_batches(n, batch_size, seed, start_batch):
        yield idx[rank * local : (rank + 1) * local]


class _BatchOrder(torch.utils.data.Sampler):
    """The deterministic batch order as a sampler: each item is a whole index batch."""

    def __init__(self, make: Callable[[], Iterator[torch.Tensor]]) -> None:
        self.make = make

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.make()


class _ImageBatches(torch.utils.data.Dataset):
    """``dataset[index_batch]`` -> (uint8 images, index_batch); reads straight from the memory-mapped shards."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(np.ascontiguousarray(self.images[idx.numpy()])), idx

    def __len__(self) -> int:
        return len(self.images)


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
    ckpt_path = out_dir / "checkpoint.pt"
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    is_main = rank == 0
    if tc.batch_size % world:
        raise ValueError(f"train.batch_size={tc.batch_size} must be divisible by the {world} processes")
    local_bs = tc.batch_size // world
    device = select_device(tc.device, int(os.environ.get("LOCAL_RANK", 0)) if world > 1 else 0)
    on_cuda = device.type == "cuda"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.precision) if on_cuda else None
    if lc.strategy == "egan" and amp_dtype is torch.float16:
        raise ValueError("loss.strategy=egan does not use a loss scaler: set train.precision to bf16 or fp32")
    memory_format = torch.channels_last if on_cuda and tc.channels_last else torch.contiguous_format
    if is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(ckpt_path)  # left by a checkpoint write that was killed mid-way

    # --- models, optimisers (TTUR: separate learning rates) ---
    torch.manual_seed(tc.seed)  # same initial weights on every rank
    spec = model_spec_for(cfg, data)
    # torch.compile trips on a channels_last ConvTranspose from DCGAN's 1x1 latent: compiled G stays contiguous.
    G = build_generator(spec).to(
        device, memory_format=torch.contiguous_format if tc.compile else memory_format
    )
    sn = None if cfg.model.d_spectral_norm == "auto" else cfg.model.d_spectral_norm
    D = build_discriminator(spec, lc.minibatch_discrimination, sn).to(device, memory_format=memory_format)
    if hasattr(G, "mixing_prob"):
        G.mixing_prob = cfg.model.style_mixing
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    g_params = list(G.parameters())
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=tc.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr_d, betas=tc.betas)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)
    torch.manual_seed(tc.seed * 7919 + 1 + rank)  # each rank draws its own latents from here on

    # --- resume ---
    start_step, history = 0, {"loss_d": [], "loss_g": [], "step": []}
    if resume and ckpt_path.is_file():
        modules = TrainingModules(G, D, G_ema, opt_g, opt_d, scaler)
        start_step, history = restore_training(ckpt_path, spec.to_dict(), modules, tc, rank, world)
    last_saved = start_step

    # --- distributed / compiled views of G and D (same parameters) ---
    G_run, D_run = G, D
    if world > 1:
        ids = [device.index] if on_cuda else None
        G_run = nn.parallel.DistributedDataParallel(G, device_ids=ids)
        D_run = nn.parallel.DistributedDataParallel(D, device_ids=ids)
    if tc.compile:
        compile_mode = "reduce-overhead" if tc.compile == "reduce-overhead" else None
        G_run = torch.compile(G_run, mode=compile_mode)
        # D runs eagerly where compiled autograd cannot follow: the spectral-norm hook updates its
        # power-iteration vectors in place, and the gradient penalty and R1 need double backward.
        spectral = any(hasattr(m, "weight_orig") for m in D.modules())
        if not spectral and lc.kind != "wgan_gp" and lc.r1_gamma == 0:
            D_run = torch.compile(D_run, mode=compile_mode)
    # In G's step D only passes gradients through: skip DDP's gradient all-reduce for it.
    D_plain = D_run if world == 1 else D

    # --- data: the same deterministic batch order, gathered from the shards here (workers=0) or by a DataLoader ---
    all_labels = torch.from_numpy(np.asarray(data.labels)).to(device) if spec.num_classes else None

    def batch_order() -> Iterator[torch.Tensor]:
        return rank_batches(len(data.images), tc.batch_size, tc.seed, start_step * tc.n_critic, rank, world)

    if tc.num_workers == 0:
        reader = _ImageBatches(data.images)
        batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = (reader[i] for i in batch_order())
    else:
        # The loader gets its own generator: its seed draw must not shift the global RNG (the latents).
        loader = torch.utils.data.DataLoader(
            _ImageBatches(data.images),
            sampler=_BatchOrder(batch_order),
            batch_size=None,
            num_workers=tc.num_workers,
            pin_memory=on_cuda,
            generator=torch.Generator().manual_seed(tc.seed),
        )
        batches = iter(loader)

    def autocast() -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()

    def augment(x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, tc.diffaugment) if tc.diffaugment else x

    def kept() -> str:
        if not ckpt_path.is_file():
            return "no checkpoint was written yet"
        return f"the last good checkpoint {ckpt_path} (step {last_saved}) is kept unchanged"

    guard = _FiniteGuard(device)

    def check_finite(now: int) -> None:
        """Host check of the device-side record (one sync); ``now`` is the last step that ran."""
        bad = guard.first_bad(world)
        if bad is not None:
            step, which, value = bad
            raise NonFiniteLossError(
                f"training diverged at step {step}: the {which} loss is {value}; stopped at step {now}; "
                f"{kept()}. Lower the learning rates, or try loss.kind=hinge or a gradient penalty."
            )

    def save(step: int) -> None:
        nonlocal last_saved
        check_finite(step)  # never write a checkpoint from a run whose losses went non-finite
        # The EMA weights' own BN statistics (a pure function of them and the seed: resume stays exact).
        recalibrate_batchnorm(G_ema, local_bs, tc.seed)
        for name, module in (("generator", G), ("discriminator", D), ("EMA generator", G_ema)):
            if not all(
                torch.isfinite(t).all() for t in module.state_dict().values() if t.is_floating_point()
            ):
                raise NonFiniteLossError(
                    f"training diverged at step {step}: the {name} weights are not finite; {kept()}"
                )
        rngs = [rng_state()]
        if world > 1:
            rngs = [None] * world
            dist.all_gather_object(rngs, rng_state())
        if not is_main:
            return
        modules = TrainingModules(G, D, G_ema, opt_g, opt_d, scaler)
        state = training_state(step, spec.to_dict(), cfg.model_dump_json(), modules, rngs, history)
        save_checkpoint(state, ckpt_path)
        last_saved = step

    def draw_labels(n: int) -> torch.Tensor | None:  # class ids for fakes, in the data's proportions
        return (
            all_labels[torch.randint(len(all_labels), (n,), device=device)]
            if all_labels is not None
            else None
        )

    bar = _progress(start_step, tc.steps, enabled=progress and is_main)
    t0, seen = time.perf_counter(), 0
    G.train(), D.train()
    loss_sums: list = [torch.zeros((), device=device), torch.zeros((), device=device), 0]
    for step in range(start_step, tc.steps):
        # --- discriminator: n_critic steps ---
        for _ in range(tc.n_critic):
            batch, idx = next(batches)
            real = to_model_range(batch.to(device, non_blocking=True)).contiguous(memory_format=memory_format)
            y = all_labels[idx.to(device)] if all_labels is not None else None
            z = torch.randn(local_bs, spec.z_dim, device=device)
            if lc.r1_gamma > 0:
                real.requires_grad_(True)
            with autocast(), torch.no_grad():
                fake = G_run(z, y)
            loss_d = discriminator_objective(lc, D_run, real, fake, y, augment, autocast)
            guard.record(loss_d, step + 1, 0)
            opt_d.zero_grad(set_to_none=True)
            scaler.scale(loss_d).backward()
            scaler.step(opt_d)
            seen += len(idx) * world
        real = real.detach()

        # --- generator: one step on the configured loss, or E-GAN's best of several mutations ---
        z = torch.randn(local_bs, spec.z_dim, device=device)
        y_fake = draw_labels(local_bs)
        if lc.mode_seeking > 0:
            y_fake = paired_labels(y_fake)
        if lc.strategy == "egan":
            evo = evolve_generator(
                G, opt_g, D_plain, z, y_fake,
                torch.randn(local_bs, spec.z_dim, device=device), draw_labels(local_bs), real, y,
                d_loss_kind=lc.kind, diversity_weight=lc.egan_diversity_weight, mutations=tuple(lc.egan_mutations),
                augment=augment, autocast=autocast,
                grad_sync=_allreduce_grads if world > 1 else None,
                value_sync=_allreduce_mean if world > 1 else None,
            )  # fmt: skip
            loss_g = evo.loss_g
            guard.record(loss_g, step + 1, 1)
        else:
            with autocast():
                fake = G_run(z, y_fake)
            loss_g = generator_objective(lc, D_plain, fake, y_fake, real, y, augment, autocast, z)
            guard.record(loss_g, step + 1, 1)
            opt_g.zero_grad(set_to_none=True)
            # Gradients for G only: D just passes them through (and toggling its requires_grad would
            # make torch.compile recompile).
            scaler.scale(loss_g).backward(inputs=g_params)
            scaler.step(opt_g)
        scaler.update()
        # EMA ramp-up: early on the average would mostly hold the random init, so its half-life grows with
        # the images seen (StyleGAN2-ADA).
        update_ema(G_ema, G, ema_beta(step, tc.batch_size, tc.ema_decay, tc.ema_rampup))

        # --- bookkeeping ---
        # Sum losses on the device (no sync per step); the history holds each interval's mean, so the
        # plotted curve is not one noisy minibatch every log_every steps.
        loss_sums[0] += loss_d.detach().float()
        loss_sums[1] += loss_g.detach().float()
        loss_sums[2] += 1
        if (step + 1) % FINITE_CHECK_EVERY == 0 or (step + 1) % tc.log_every == 0:
            check_finite(step + 1)  # checkpoint steps (and the last) check in save()
        if (step + 1) % tc.log_every == 0 or step + 1 == tc.steps:
            ld, lg = (loss_sums[0] / loss_sums[2]).item(), (loss_sums[1] / loss_sums[2]).item()
            loss_sums = [torch.zeros((), device=device), torch.zeros((), device=device), 0]
            history["step"].append(step + 1)
            history["loss_d"].append(ld)
            history["loss_g"].append(lg)
            rate = seen / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss_d=f"{ld:.3f}", loss_g=f"{lg:.3f}", img_s=f"{rate:.0f}")
            if on_log and is_main:
                logs = {"loss_d": ld, "loss_g": lg, "images_per_sec": rate}
                if lc.strategy == "egan":
                    logs["egan_best"] = float(lc.egan_mutations.index(evo.best))
                on_log(step + 1, logs)
        if (step + 1) % tc.checkpoint_every == 0 or step + 1 == tc.steps:
            save(step + 1)
        bar.update(1)
    bar.close()
    if world > 1:
        dist.barrier()  # the others wait until rank 0 has written the final checkpoint

    return TrainResult(
        checkpoint=ckpt_path,
        steps=tc.steps,
        device=str(device),
        images_per_sec=seen / max(time.perf_counter() - t0, 1e-9),
        resumed_from=start_step,
        history=history,
        generator=G,
        generator_ema=G_ema,
    )


def _allreduce_grads(module: nn.Module) -> None:
    """Average gradients over ranks (what DDP does, for E-GAN's children, which train the unwrapped G)."""
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


def _allreduce_mean(values: list[float]) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def _progress(start: int, total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=start, disable=not enabled, desc="train", unit="step", dynamic_ncols=True
    )
