"""Generator inference on the CPU: ONNX Runtime (our export, ``OnnxGenerator``'s session settings) vs PyTorch
eager on the same DCGAN at batch 1 and 64, plus the export rewrites and the thread settings alone.

Timing is interleaved: every round calls each contender once, in turn, and each is summarised by its
median over the rounds, so load from other processes on a shared machine hits all of them alike.
Both libraries use their default thread count (one per core). Ratio < 1 means ours is faster.
"""

from __future__ import annotations

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


def interleaved_medians(
    fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 3
) -> dict[str, float]:
    """Median seconds per call of each function, called in turn every round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def _row(benchmark: str, ours: float, ref: float, ref_name: str, target: str, note: str = "") -> dict:
    return {
        "benchmark": benchmark,
        "ours": f"{ours * 1e3:.2f} ms",
        "reference": f"{ref * 1e3:.2f} ms ({ref_name})",
        "ratio": ours / ref,
        "target": target,
        "note": note,
    }


def run(rounds: int = 40) -> list[dict]:
    torch.manual_seed(0)
    g = build_generator(ModelSpec("dcgan", 32, 1, 64, 10, 32, 32)).eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path, plain = Path(tmp) / "g.onnx", Path(tmp) / "plain.onnx"
        info = export_onnx(g, path, metadata=META)
        export_onnx(g, plain, metadata=META, optimize=False)
        ours = OnnxGenerator(path, device="cpu")
        variants = {
            "exporter graph": OnnxGenerator(plain, device="cpu"),
            "1 thread": OnnxGenerator(path, device="cpu", threads=1),
            "spinning threads (spin=True)": OnnxGenerator(path, device="cpu", spin=True),
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

            fns = {"ours": lambda zn=zn, yn=yn: ours.run(zn, yn), "eager": eager, "eager 1": eager_1thread}
            fns |= {k: (lambda v=v, zn=zn, yn=yn: v.run(zn, yn)) for k, v in variants.items()}
            t = interleaved_medians(fns, rounds)
            err = float(np.abs(ours.run(zn, yn) - eager().numpy()).max())
            rows.append(
                _row(
                    f"generator inference, batch {batch} (ONNX Runtime CPU vs PyTorch eager)",
                    t["ours"],
                    t["eager"],
                    "eager",
                    ">= 1.5x faster (ratio <= 0.667)" if batch == 64 else "report",
                    f"parity {err:.1e}; {torch.get_num_threads()} torch threads, ORT default; rewrites {info.rewrites}",
                )
            )
            rows.append(
                _row(
                    f"generator inference, batch {batch}, 1 thread each (ONNX Runtime vs PyTorch eager)",
                    t["1 thread"],
                    t["eager 1"],
                    "eager, 1 thread",
                    "report (no thread contention in either)",
                )
            )
            for name in variants:
                rows.append(
                    _row(
                        f"ONNX Runtime batch {batch}: shipped settings vs {name}",
                        t["ours"],
                        t[name],
                        name,
                        "report (< 1: shipped is faster)",
                    )
                )
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['benchmark']}: {r['ours']} vs {r['reference']}: {r['ratio']:.2f}x  {r['note']}")
