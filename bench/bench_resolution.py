"""Training step time of the shipped 64/128 px configs on this machine, full-size models: how far a real
resolution is from a CPU budget. Digits upscaled to the config's resolution (1 channel); the config's
n_critic and learning setup; the batch from ``--batch`` (default: the config's).

Per-step time is the wall time between the trainer's log callbacks after step 1 and after step 1 + K (so
model construction and the first step's warm-up are left out); the run stops there, before the final
checkpoint. img/s counts real images through D, the trainer's own ``images_per_sec`` definition.

    python -m bench.bench_resolution --steps 2 --batch 16
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time

import torch

from bench.bench_train import digits_split
from ganlib.config import load_config
from ganlib.models import build_discriminator, build_generator
from ganlib.training import model_spec_for, train


class _Stop(Exception):
    """Raised from the log callback: the measurement is done, skip the final checkpoint."""


def measure(name: str, steps: int, batch: int | None, device: str = "cpu") -> dict:
    over = {"train": {"checkpoint_every": 10**9, "log_every": 1, "device": device, "steps": steps + 2}}
    if batch:
        over["train"]["batch_size"] = batch
    cfg = load_config(name, over)
    data = digits_split(cfg.model.resolution)
    spec = model_spec_for(cfg, data)
    params = [
        sum(p.numel() for p in m.parameters()) for m in (build_generator(spec), build_discriminator(spec))
    ]
    stamps: dict[int, tuple[float, float]] = {}

    def on_log(step: int, _values: dict) -> None:
        stamps[step] = (time.perf_counter(), time.process_time())
        if step == steps + 1:
            raise _Stop

    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(_Stop):
        train(cfg, data, tmp, resume=False, progress=False, on_log=on_log)
    (w0, c0), (w1, c1) = stamps[1], stamps[steps + 1]
    step_s = (w1 - w0) / steps
    tc, full = cfg.train, load_config(name).train
    return {
        "config": name,
        "resolution": cfg.model.resolution,
        "params_g": params[0],
        "params_d": params[1],
        "batch": tc.batch_size,
        "n_critic": tc.n_critic,
        "step_s": step_s,
        "cpu_s_per_step": (c1 - c0) / steps,
        "img_s": tc.batch_size * tc.n_critic / step_s,
        # The config's own steps and batch at this rate (CPU time grows about linearly with the batch).
        "full_run_days": step_s * full.steps * (full.batch_size / tc.batch_size) / 86400,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_resolution", description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default="sngan-64,sngan-128")
    ap.add_argument("--steps", type=int, default=2, help="measured G steps (K)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: the config's)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    print(
        f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}, device {args.device}"
    )
    print(
        "| config | px | G / D params | batch | n_critic | s per G step | CPU s per step | img/s | full run |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name in args.configs.split(","):
        r = measure(name, args.steps, args.batch, args.device)
        print(
            f"| {r['config']} | {r['resolution']} | {r['params_g'] / 1e6:.1f}M / {r['params_d'] / 1e6:.1f}M "
            f"| {r['batch']} | {r['n_critic']} | {r['step_s']:.1f} | {r['cpu_s_per_step']:.1f} | "
            f"{r['img_s']:.1f} | {r['full_run_days']:.0f} days |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
