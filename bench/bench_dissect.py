"""Cost of the batched ablation sweep (K units over the same N latents) against one plain forward pass.

Prints ratios measured in the same run: ``sweep / plain`` (K units need K x N generated images, so the ideal
is about K), ``per_unit = sweep / (K * plain)`` (1.0 = an ablation costs exactly one plain pass), and the
sweep against the naive way (a model copy per unit, one unit per pass). ``run()`` returns the numbers.

    .venv/bin/python bench/bench_dissect.py [--units 16] [--samples 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from ganlib.models import ModelSpec, build_discriminator, build_generator
from ganlib.prune import ablate
from ganlib.units import ablation_sweep


def _time(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


@torch.no_grad()
def run(
    units: int = 16,
    samples: int = 256,
    batch_size: int = 128,
    resolution: int = 32,
    g_width: int = 32,
    repeats: int = 3,
    device: str = "cpu",
) -> dict[str, float]:
    torch.manual_seed(0)
    spec = ModelSpec("dcgan", resolution, 3, 64, 10, g_width, g_width)
    g = build_generator(spec).to(device).eval()
    d = build_discriminator(spec).to(device).eval()
    z, y = g.sample_inputs(samples, seed=0, device=device)
    layer = "blocks.1"
    chosen = [(layer, u) for u in range(units)]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def plain() -> None:
        for s in range(0, samples, batch_size):
            g(z[s : s + batch_size], y[s : s + batch_size])

    def sweep() -> None:
        ablation_sweep(g, chosen, z, y, batch_size=batch_size)

    def sweep_with_d() -> None:  # and D's mean realism logit of each unit's images
        ablation_sweep(g, chosen, z, y, score_fn=lambda x, yy: float(d(x, yy).mean()), batch_size=batch_size)

    def naive() -> None:  # what batching avoids: one model copy and one unit per pass
        for _, u in chosen:
            gc = copy.deepcopy(g)
            with ablate(gc, {layer: [u]}):
                for s in range(0, samples, batch_size):
                    gc(z[s : s + batch_size], y[s : s + batch_size])

    for fn in (plain, sweep, sweep_with_d, naive):
        fn()  # warm-up
    # Interleaved rounds, median of per-round ratios: on a shared machine the load drifts between rounds,
    # and a ratio taken within one round cancels most of that drift.
    rounds = [
        {
            name: _time(fn, sync)
            for name, fn in (("plain", plain), ("sweep", sweep), ("sweep_d", sweep_with_d), ("naive", naive))
        }
        for _ in range(repeats)
    ]

    def med(f) -> float:
        return statistics.median(f(r) for r in rounds)

    return {
        "device": device,
        "units": units,
        "samples": samples,
        "plain_s": med(lambda r: r["plain"]),
        "sweep_s": med(lambda r: r["sweep"]),
        "sweep_over_plain": med(lambda r: r["sweep"] / r["plain"]),
        "per_unit": med(lambda r: r["sweep"] / (units * r["plain"])),
        "per_unit_with_d": med(lambda r: r["sweep_d"] / (units * r["plain"])),
        "naive_over_sweep": med(lambda r: r["naive"] / r["sweep"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=16)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = p.parse_args()
    r = run(units=a.units, samples=a.samples, device=a.device)
    print(
        f"ablation sweep of {r['units']} units over {r['samples']} samples ({a.device}): "
        f"{r['sweep_over_plain']:.2f}x one plain forward pass "
        f"(per unit {r['per_unit']:.2f}x; with D realism {r['per_unit_with_d']:.2f}x; "
        f"naive copy-per-unit is {r['naive_over_sweep']:.2f}x the sweep)"
    )


if __name__ == "__main__":
    main()
