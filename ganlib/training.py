"""The GAN training loop: read it top to bottom.

``train(cfg, data, out_dir)`` is the loop: ``n_critic`` discriminator steps, then one generator step (or
one E-GAN evolution step, ``loss.strategy: egan``), the EMA update, and the logging and checkpoint
cadences. ``TrainingRun`` below it builds what the loop uses (G, D and an EMA copy of G from the config,
optimisers, the resume, the batch order of ``ganlib.batch_order``) and holds the phases of a step.

It checkpoints every ``checkpoint_every`` steps (atomically, weights-only loadable), resumes exactly from
``out_dir/checkpoint.pt`` (a resumed run sees exactly the batches and random draws a straight run would
have), and stops with ``NonFiniteLossError`` on a NaN/inf loss without touching the last good checkpoint.
The losses are checked on the device every step and read back on the host every ``FINITE_CHECK_EVERY``
steps and before every checkpoint (no sync per step): the error names the first step whose loss went
non-finite, training stops within ``FINITE_CHECK_EVERY`` steps of it, and no checkpoint is ever written
from a diverged run.

Distributed: when ``torch.distributed`` is initialised (``ganlib.train_cli`` under torchrun does it), G
and D are wrapped in DDP, each rank trains on its own disjoint slice of every global batch (so
``batch_size`` stays the global batch size), and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .augment import diff_augment
from .batch_order import real_batches
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
from .egan import Evolution, evolve_generator
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


def train(
    cfg: GANConfig,
    data: Split,
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train the GAN ``cfg`` names on ``data`` into ``out_dir`` (see the module doc); ``on_log(step, logs)``
    gets the mean losses and the throughput every ``log_every`` steps."""
    tc = cfg.train
    run = TrainingRun(cfg, data, Path(out_dir), resume=resume)
    G, G_ema = run.modules.generator, run.modules.generator_ema
    bar = _progress(run.start_step, tc.steps, enabled=progress and run.is_main)
    meter = _LossMeter(run.device)
    t0 = time.perf_counter()
    evo = None
    for step in range(run.start_step, tc.steps):
        for _ in range(tc.n_critic):
            loss_d, real, y = run.discriminator_step(step)
        loss_g, evo = run.generator_step(step, real.detach(), y)
        run.modules.scaler.update()  # one loss-scale update for both optimisers' steps
        # EMA ramp-up: early on the average would mostly hold the random init, so its half-life grows with
        # the images seen (StyleGAN2-ADA).
        update_ema(G_ema, G, ema_beta(step, tc.batch_size, tc.ema_decay, tc.ema_rampup))

        # --- bookkeeping: the host reads the device only at these cadences, never every step ---
        done = step + 1
        meter.add(loss_d, loss_g)
        if done % FINITE_CHECK_EVERY == 0 or done % tc.log_every == 0:
            run.check_finite(done)  # checkpoint steps (and the last) check in save()
        if done % tc.log_every == 0 or done == tc.steps:
            (mean_d, mean_g), rate = meter.take(), run.images_seen / _elapsed(t0)
            bar.set_postfix(loss_d=f"{mean_d:.3f}", loss_g=f"{mean_g:.3f}", img_s=f"{rate:.0f}")
            logs = run.log(done, mean_d, mean_g, rate, evo)
            if on_log and run.is_main:
                on_log(done, logs)
        if done % tc.checkpoint_every == 0 or done == tc.steps:
            run.save(done)
        bar.update(1)
    bar.close()
    if run.world > 1:
        dist.barrier()  # the others wait until rank 0 has written the final checkpoint

    return TrainResult(
        checkpoint=run.ckpt_path,
        steps=tc.steps,
        device=str(run.device),
        images_per_sec=run.images_seen / _elapsed(t0),
        resumed_from=run.start_step,
        history=run.history,
        generator=G,
        generator_ema=G_ema,
    )


class TrainingRun:
    """What ``train`` builds before its first step, and the phases every step runs.

    Set-up, in the order the RNG streams depend on: the process's place (rank, device, precision), the
    models and optimisers from ``cfg.train.seed`` (the same on every rank), then each rank's own latent
    stream, the resume from ``out_dir/checkpoint.pt``, the DDP/compiled views and the batch order.
    """

    def __init__(self, cfg: GANConfig, data: Split, out_dir: Path, *, resume: bool) -> None:
        tc = cfg.train
        self.cfg, self.tc, self.lc = cfg, tc, cfg.loss
        self.rank, self.world, self.device, self.amp_dtype, self.memory_format = _placement(cfg)
        self.is_main, self.local_bs = self.rank == 0, tc.batch_size // self.world
        self.ckpt_path = out_dir / "checkpoint.pt"
        if self.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(self.ckpt_path)  # left by a checkpoint write that was killed mid-way

        torch.manual_seed(tc.seed)  # same initial weights on every rank
        self.spec = model_spec_for(cfg, data)
        self.modules = _build_modules(cfg, self.spec, self.device, self.memory_format, self.amp_dtype)
        self.g_params = list(self.modules.generator.parameters())
        torch.manual_seed(tc.seed * 7919 + 1 + self.rank)  # each rank draws its own latents from here on

        self.start_step, self.history = 0, {"loss_d": [], "loss_g": [], "step": []}
        if resume and self.ckpt_path.is_file():
            self.start_step, self.history = restore_training(
                self.ckpt_path, self.spec.to_dict(), self.modules, tc, self.rank, self.world
            )
        self.last_saved = self.start_step

        self.G_run, self.D_run, self.D_plain = _step_views(self.modules, cfg, self.device, self.world)
        self.labels = (
            torch.from_numpy(np.asarray(data.labels)).to(self.device) if self.spec.num_classes else None
        )
        self.batches = real_batches(
            data.images, tc.batch_size, tc.seed, self.start_step * tc.n_critic,
            rank=self.rank, world=self.world, num_workers=tc.num_workers, pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        self.augment = functools.partial(diff_augment, policy=tc.diffaugment)  # no policy: x itself
        self.guard = _FiniteGuard(self.device)
        self.images_seen = 0
        self.modules.generator.train(), self.modules.discriminator.train()

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def latents(self) -> torch.Tensor:
        return torch.randn(self.local_bs, self.spec.z_dim, device=self.device)

    def fake_labels(self) -> torch.Tensor | None:
        """Class ids for a fake batch, drawn in the data's proportions (None when unconditional)."""
        if self.labels is None:
            return None
        return self.labels[torch.randint(len(self.labels), (self.local_bs,), device=self.device)]

    # --- the phases of a step ---

    def discriminator_step(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One D update on the next real batch and a fresh fake one; returns (loss, real batch, its labels)."""
        batch, idx = next(self.batches)
        real = to_model_range(batch.to(self.device, non_blocking=True))
        real = real.contiguous(memory_format=self.memory_format)
        y = self.labels[idx.to(self.device)] if self.labels is not None else None
        z = self.latents()
        if self.lc.r1_gamma > 0:
            real.requires_grad_(True)
        with self.autocast(), torch.no_grad():
            fake = self.G_run(z, y)
        loss = discriminator_objective(self.lc, self.D_run, real, fake, y, self.augment, self.autocast)
        self.guard.record(loss, step + 1, 0)
        m = self.modules
        m.opt_d.zero_grad(set_to_none=True)
        m.scaler.scale(loss).backward()
        m.scaler.step(m.opt_d)
        self.images_seen += len(idx) * self.world
        return loss, real, y

    def generator_step(
        self, step: int, real: torch.Tensor, y_real: torch.Tensor | None
    ) -> tuple[torch.Tensor, Evolution | None]:
        """One G update on the configured loss, or E-GAN's best of several mutations (returned too)."""
        z, y = self.latents(), self.fake_labels()
        if self.lc.mode_seeking > 0:  # the batch's halves share class ids: the pairs mode seeking compares
            y = paired_labels(y)
        if self.lc.strategy == "egan":
            evo = self._evolve(z, y, real, y_real)
            self.guard.record(evo.loss_g, step + 1, 1)
            return evo.loss_g, evo
        with self.autocast():
            fake = self.G_run(z, y)
        loss = generator_objective(
            self.lc, self.D_plain, fake, y, real, y_real, self.augment, self.autocast, z
        )
        self.guard.record(loss, step + 1, 1)
        m = self.modules
        m.opt_g.zero_grad(set_to_none=True)
        # Gradients for G only: D just passes them through (and toggling its requires_grad would make
        # torch.compile recompile).
        m.scaler.scale(loss).backward(inputs=self.g_params)
        m.scaler.step(m.opt_g)
        return loss, None

    def _evolve(
        self, z: torch.Tensor, y: torch.Tensor | None, real: torch.Tensor, y_real: torch.Tensor | None
    ) -> Evolution:
        lc, distributed = self.lc, self.world > 1
        fit_z = self.latents()
        return evolve_generator(
            self.modules.generator, self.modules.opt_g, self.D_plain, z, y, fit_z, self.fake_labels(),
            real, y_real,
            d_loss_kind=lc.kind, diversity_weight=lc.egan_diversity_weight, mutations=tuple(lc.egan_mutations),
            augment=self.augment, autocast=self.autocast,
            grad_sync=_allreduce_grads if distributed else None,
            value_sync=_allreduce_mean if distributed else None,
        )  # fmt: skip

    # --- bookkeeping ---

    def log(
        self, step: int, loss_d: float, loss_g: float, rate: float, evo: Evolution | None
    ) -> dict[str, float]:
        """Record an interval's mean losses in the history; returns what ``on_log`` receives."""
        self.history["step"].append(step)
        self.history["loss_d"].append(loss_d)
        self.history["loss_g"].append(loss_g)
        logs = {"loss_d": loss_d, "loss_g": loss_g, "images_per_sec": rate}
        if evo is not None:
            logs["egan_best"] = float(self.lc.egan_mutations.index(evo.best))
        return logs

    def check_finite(self, now: int) -> None:
        """Host check of the device-side record (one sync); ``now`` is the last step that ran."""
        bad = self.guard.first_bad(self.world)
        if bad is not None:
            step, which, value = bad
            raise NonFiniteLossError(
                f"training diverged at step {step}: the {which} loss is {value}; stopped at step {now}; "
                f"{self._kept()}. Lower the learning rates, or try loss.kind=hinge or a gradient penalty."
            )

    def save(self, step: int) -> None:
        """Checkpoint ``step`` (rank 0 writes; every rank's RNG state goes in), never from a diverged run."""
        self.check_finite(step)
        m = self.modules
        # The EMA weights' own BN statistics (a pure function of them and the seed: resume stays exact).
        recalibrate_batchnorm(m.generator_ema, self.local_bs, self.tc.seed)
        named = (
            ("generator", m.generator),
            ("discriminator", m.discriminator),
            ("EMA generator", m.generator_ema),
        )
        for name, module in named:
            if not _all_finite(module):
                raise NonFiniteLossError(
                    f"training diverged at step {step}: the {name} weights are not finite; {self._kept()}"
                )
        rngs = [rng_state()]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, rng_state())
        if not self.is_main:
            return
        state = training_state(step, self.spec.to_dict(), self.cfg.model_dump_json(), m, rngs, self.history)
        save_checkpoint(state, self.ckpt_path)
        self.last_saved = step

    def _kept(self) -> str:
        if not self.ckpt_path.is_file():
            return "no checkpoint was written yet"
        return f"the last good checkpoint {self.ckpt_path} (step {self.last_saved}) is kept unchanged"


def _placement(cfg: GANConfig) -> tuple[int, int, torch.device, torch.dtype | None, torch.memory_format]:
    """(rank, world size, device, autocast dtype or None, memory format) of this process."""
    tc = cfg.train
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if tc.batch_size % world:
        raise ValueError(f"train.batch_size={tc.batch_size} must be divisible by the {world} processes")
    device = select_device(tc.device, int(os.environ.get("LOCAL_RANK", 0)) if world > 1 else 0)
    on_cuda = device.type == "cuda"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(tc.precision) if on_cuda else None
    if cfg.loss.strategy == "egan" and amp_dtype is torch.float16:
        raise ValueError("loss.strategy=egan does not use a loss scaler: set train.precision to bf16 or fp32")
    memory_format = torch.channels_last if on_cuda and tc.channels_last else torch.contiguous_format
    return rank, world, device, amp_dtype, memory_format


def _build_modules(
    cfg: GANConfig,
    spec: ModelSpec,
    device: torch.device,
    memory_format: torch.memory_format,
    amp_dtype: torch.dtype | None,
) -> TrainingModules:
    """G, D, the EMA copy of G, their optimisers (TTUR: separate learning rates) and the loss scaler."""
    tc = cfg.train
    # torch.compile trips on a channels_last ConvTranspose from DCGAN's 1x1 latent: compiled G stays contiguous.
    G = build_generator(spec).to(
        device, memory_format=torch.contiguous_format if tc.compile else memory_format
    )
    D = build_discriminator(spec, cfg.loss.minibatch_discrimination, cfg.model.d_spectral_norm).to(
        device, memory_format=memory_format
    )
    if hasattr(G, "mixing_prob"):
        G.mixing_prob = cfg.model.style_mixing
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(G.parameters(), lr=tc.lr_g, betas=tc.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=tc.lr_d, betas=tc.betas)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)
    return TrainingModules(G, D, G_ema, opt_g, opt_d, scaler)


def _step_views(
    m: TrainingModules, cfg: GANConfig, device: torch.device, world: int
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(G, D, D in G's step) as the steps call them: DDP-wrapped over ranks and compiled when configured;
    the parameters are the modules' own."""
    G_run, D_run = m.generator, m.discriminator
    if world > 1:
        ids = [device.index] if device.type == "cuda" else None
        G_run = nn.parallel.DistributedDataParallel(G_run, device_ids=ids)
        D_run = nn.parallel.DistributedDataParallel(D_run, device_ids=ids)
    if cfg.train.compile:
        compile_mode = "reduce-overhead" if cfg.train.compile == "reduce-overhead" else None
        G_run = torch.compile(G_run, mode=compile_mode)
        # D runs eagerly where compiled autograd cannot follow: the spectral-norm hook updates its
        # power-iteration vectors in place, and the gradient penalty and R1 need double backward.
        spectral = any(hasattr(mod, "weight_orig") for mod in m.discriminator.modules())
        if not spectral and cfg.loss.kind != "wgan_gp" and cfg.loss.r1_gamma == 0:
            D_run = torch.compile(D_run, mode=compile_mode)
    # In G's step D only passes gradients through: skip DDP's gradient all-reduce for it.
    return G_run, D_run, D_run if world == 1 else m.discriminator


class _LossMeter:
    """The D and G losses summed on the device (no sync per step); ``take`` returns the interval's means and
    starts the next, so the history's curve is not one noisy minibatch every ``log_every`` steps."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.sum_d = torch.zeros((), device=self.device)
        self.sum_g = torch.zeros((), device=self.device)
        self.count = 0

    def add(self, loss_d: torch.Tensor, loss_g: torch.Tensor) -> None:
        self.sum_d += loss_d.detach().float()
        self.sum_g += loss_g.detach().float()
        self.count += 1

    def take(self) -> tuple[float, float]:
        means = (self.sum_d / self.count).item(), (self.sum_g / self.count).item()
        self._reset()
        return means


def _all_finite(module: nn.Module) -> bool:
    return all(torch.isfinite(t).all() for t in module.state_dict().values() if t.is_floating_point())


def _elapsed(t0: float) -> float:
    return max(time.perf_counter() - t0, 1e-9)


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
