"""Generator inference: ONNX Runtime (CPU provider) vs PyTorch eager on the same DCGAN, batch 1 and 64,
timed in the same process. Ratio < 1 means ONNX Runtime is faster."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganlib.export import export_onnx
from ganlib.models import ModelSpec, build_generator


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(repeats: int = 30) -> list[dict]:
    import onnxruntime as ort

    g = build_generator(ModelSpec("dcgan", 32, 1, 64, 10, 32, 32)).eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.onnx"
        meta = {
            "model_name": "bench",
            "model_version": "v1",
            "config_hash": "-",
            "data_hash": "-",
            "fid": "-",
            "fid_backbone": "-",
        }
        export_onnx(g, path, metadata=meta)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for batch in (1, 64):
            z = torch.randn(batch, 64)
            y = torch.arange(batch) % 10
            feeds = {"z": z.numpy(), "class_id": y.numpy()}

            def eager(z=z, y=y):
                with torch.inference_mode():
                    g(z, y)

            def onnx(feeds=feeds):
                session.run(None, feeds)

            t_torch = _median_time(eager, repeats)
            t_onnx = _median_time(onnx, repeats)
            rows.append(
                {
                    "benchmark": f"generator inference, batch {batch} (ONNX Runtime CPU vs PyTorch eager)",
                    "ours": f"{t_onnx * 1e3:.2f} ms",
                    "reference": f"{t_torch * 1e3:.2f} ms (eager)",
                    "ratio": t_onnx / t_torch,
                    "target": "report",
                }
            )
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['benchmark']}: {r['ours']} vs {r['reference']}: {r['ratio']:.2f}x")
