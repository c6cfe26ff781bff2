"""bench/bench_data.py at toy size: it runs, reports both rates, and the loader outpaces training."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_data.py"


def test_loader_outpaces_the_training_step() -> None:
    spec = importlib.util.spec_from_file_location("bench_data", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    r = bench.run(n=1024, resolution=16, batch_size=32, batches=20, steps=3, device="cpu")

    assert r["images"] == 1024 and r["image_shape"] == (1, 16, 16)
    assert r["train_img_s"] > 0
    # Orders of magnitude apart on any machine (indexing uint8 vs a G+D forward/backward), so a loaded CI
    # box cannot flip it; a loader slower than training would.
    assert r["ratio_resident"] > 1 and r["ratio_mmap"] > 1 and not r["loader_is_bottleneck"]
