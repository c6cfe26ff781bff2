"""GPU training throughput (only where CUDA is present): img/s of the DCGAN trainer at 32x32 and 64x64, fp32
vs bf16 autocast, and bf16 + torch.compile. Ratios are against fp32 at the same resolution, same run."""

from __future__ import annotations

import tempfile
import time

import torch
import torch.nn.functional as F

from ganlib.config import parse_config
from ganlib.data.shards import Split
from ganlib.data.sources import digits_images
from ganlib.training import train


def _split(resolution: int) -> Split:
    images, labels = digits_images()
    x = F.interpolate(
        torch.from_numpy(images).float()[:, None], size=(resolution, resolution), mode="bilinear"
    )
    return Split(
        images=x.round().clamp(0, 255).to(torch.uint8).numpy(),
        labels=labels,
        meta={"class_names": [str(i) for i in range(10)]},
    )


def _img_s(
    resolution: int, precision: str, compile_: bool, steps: int, batch: int, device: str = "cuda"
) -> float:
    cfg = parse_config(
        {
            "model": {"g_width": 64, "d_width": 64, "z_dim": 128},
            "train": {
                "steps": steps,
                "batch_size": batch,
                "device": device,
                "precision": precision,
                "compile": compile_,
                "checkpoint_every": 10**9,
                "log_every": 10**9,
            },
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        # Two lengths, so start-up (and compilation) cancels: steady-state img/s.
        short = train(
            cfg.model_copy(update={"train": cfg.train.model_copy(update={"steps": steps // 4})}),
            _split(resolution),
            tmp + "/a",
            resume=False,
            progress=False,
        )
        full = train(cfg, _split(resolution), tmp + "/b", resume=False, progress=False)
    del short
    return full.images_per_sec


def run(
    steps: int = 300,
    batch: int = 256,
    resolutions: tuple[int, ...] = (32, 64),
    compile_: bool = True,
    budget_s: float = 150.0,
) -> list[dict]:
    """Unattended and bounded: no variant starts after ``budget_s`` seconds (the slowest one, a
    torch.compile variant, takes ~1-2 min on an H100), and a variant that fails (e.g. no C compiler for
    torch.compile) becomes an error row instead of ending the benchmark."""
    if not torch.cuda.is_available():
        return [
            {
                "benchmark": "GPU training throughput",
                "ratio": "skipped",
                "note": "no CUDA device on this machine",
            }
        ]
    name = torch.cuda.get_device_name(0)
    start = time.monotonic()
    rows: list[dict] = []

    def measure(label: str, res: int, precision: str, comp: bool) -> float | None:
        if time.monotonic() - start > budget_s:
            rows.append(
                {"benchmark": f"GPU train {res}x{res} {label}", "ratio": "skipped", "note": "time budget"}
            )
            return None
        try:
            return _img_s(res, precision, comp, steps, batch)
        except Exception as exc:  # one failing variant must not hide the others
            note = f"{type(exc).__name__}: {exc}"[:200]
            rows.append({"benchmark": f"GPU train {res}x{res} {label}", "ratio": "error", "note": note})
            return None

    for res in resolutions:
        fp32 = measure("fp32", res, "fp32", False)
        if fp32 is None:
            continue
        variants = [("bf16 autocast", "bf16", False)]
        if compile_:
            variants.append(("bf16 + torch.compile", "bf16", True))
        for label, precision, comp in variants:
            ours = measure(f"{label} vs fp32", res, precision, comp)
            if ours is None:
                continue
            rows.append(
                {
                    "benchmark": f"GPU train {res}x{res} {label} vs fp32 ({name})",
                    "ours": f"{ours:.0f} img/s",
                    "reference": f"{fp32:.0f} img/s (fp32)",
                    "ratio": fp32 / ours,
                    "target": "report (ratio < 1: faster)",
                    "note": f"batch {batch}, {steps} steps",
                }
            )
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
