"""Generator inference on the CPU: ONNX Runtime (our export, ``OnnxGenerator``'s session settings) vs PyTorch
eager on the same DCGAN at batch 1 and 64, plus the export rewrites and the thread settings alone.

Timing is interleaved: every round calls each contender once, in a random order, so drift in the machine's
load hits all of them alike; each is summarised by its fastest round, since load from other processes on a
shared machine only ever adds time (medians there swung by 2x between runs).
Rows compare at each side's default threads (torch one per core, ours 1) and at 1 thread each (the row
that is robust to other load on the machine). Ratio < 1 means ours is faster.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganlib.export import export_onnx
from ganlib.models import ModelSpec, build_generator
from ganlib.serving import OnnxGenerator

META = {
    "model_name": "bench",
    "model_version": "v1",
    "config_hash": "-",
    "data_hash": "-",
    "fid": "-",
    "fid_backbone": "-",
}


def bench_generator() -> torch.nn.Module:
    """The DCGAN both inference benchmarks serve: 32px, z 64, conditional (10 classes), g_width 32."""
    torch.manual_seed(0)
    return build_generator(ModelSpec("dcgan", 32, 1, 64, 10, 32, 32)).eval()


def interleaved_best(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 3) -> dict[str, float]:
    """Fastest seconds per call of each function. Every round calls each once, in a fresh random order: a
    contender's thread pools keep spinning briefly after it returns and would tax whoever always ran next."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.min(v)) for k, v in times.items()}


def _row(benchmark: str, ours: float, ref: float, ref_name: str, target: str, note: str = "") -> dict:
    return {
        "benchmark": benchmark,
        "ours": f"{ours * 1e3:.2f} ms",
        "reference": f"{ref * 1e3:.2f} ms ({ref_name})",
        "ratio": ours / ref,
        "target": target,
        "note": note,
    }


def run(rounds: int = 60) -> list[dict]:
    g = bench_generator()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path, plain = Path(tmp) / "g.onnx", Path(tmp) / "plain.onnx"
        info = export_onnx(g, path, metadata=META)
        export_onnx(g, plain, metadata=META, optimize=False)
        rewrites = ", ".join(f"{v} {k}" for k, v in info.rewrites.items())
        sessions = {
            "ours": OnnxGenerator(path, device="cpu", threads=1),  # the shipped settings
            "exporter graph": OnnxGenerator(plain, device="cpu", threads=1),
            "per core": OnnxGenerator(path, device="cpu", threads=0),
            "per core spin": OnnxGenerator(path, device="cpu", threads=0, spin=True),
        }
        for batch in (1, 64):
            z = torch.randn(batch, 64)
            y = torch.arange(batch) % 10
            zn, yn = z.numpy(), y.numpy()

            def eager(z=z, y=y):
                with torch.inference_mode():
                    return g(z, y)

            def eager_1thread(eager=eager):
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    return eager()
                finally:
                    torch.set_num_threads(threads)

            fns = {k: (lambda s=s, zn=zn, yn=yn: s.run(zn, yn)) for k, s in sessions.items()}
            fns |= {"eager": eager, "eager 1": eager_1thread}
            t = interleaved_best(fns, rounds)
            err = float(np.abs(sessions["ours"].run(zn, yn) - eager().numpy()).max())
            target = ">= 1.5x faster (ratio <= 0.667)" if batch == 64 else "report"
            torch_threads = torch.get_num_threads()
            rows += [
                _row(
                    f"generator inference, batch {batch}: ONNX Runtime (shipped settings) vs PyTorch eager",
                    t["ours"],
                    t["eager"],
                    "eager",
                    target,
                    f"parity {err:.1e}; {torch_threads} torch threads (its default), ORT 1 (ours)",
                ),
                _row(
                    f"generator inference, batch {batch}, one thread per core each: ONNX Runtime vs PyTorch eager",
                    t["per core"],
                    t["eager"],
                    "eager",
                    "report",
                    "eager's pool suffers most from other load on the machine",
                ),
                _row(
                    f"generator inference, batch {batch}, 1 thread each: ONNX Runtime vs PyTorch eager",
                    t["ours"],
                    t["eager 1"],
                    "eager, 1 thread",
                    target,
                    "robust to other load on the machine",
                ),
                _row(
                    f"ONNX export rewrites, batch {batch}: our graph vs the exporter's (1 thread each)",
                    t["ours"],
                    t["exporter graph"],
                    "exporter graph",
                    "report",
                    rewrites,
                ),
                _row(
                    f"ONNX Runtime threads, batch {batch}: 1 (shipped) vs one per core",
                    t["ours"],
                    t["per core"],
                    "one per core",
                    "report (< 1: one thread pays)",
                ),
                _row(
                    f"ONNX Runtime one per core, batch {batch}: idle threads sleep (spin=False) vs spin",
                    t["per core"],
                    t["per core spin"],
                    "spin=True",
                    "report (< 1: sleeping pays)",
                ),
            ]
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['benchmark']}: {r['ours']} vs {r['reference']}: {r['ratio']:.2f}x  {r['note']}")
