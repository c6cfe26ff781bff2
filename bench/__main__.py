"""Run every benchmark and print one table of ratios; write it to bench/RESULTS.md with date, machine and
command. Usage: ``python -m bench`` (``make bench``); ``python -m bench --only frechet,train``.

Every ratio is against a reference measured in the same process and run, so it holds on a noisy machine;
the absolute times are for orientation only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

Row = dict[str, object]


def _frechet() -> list[Row]:
    from bench.bench_frechet import run

    r = run()
    return [
        {
            "benchmark": f"Fréchet distance, {r['dim']} dims (ours vs scipy sqrtm)",
            "ours": f"{r['ours_s']:.3f} s",
            "reference": f"{r['scipy_sqrtm_s']:.3f} s",
            "ratio": r["ours_s"] / r["scipy_sqrtm_s"],
            "target": ">= 5x faster (ratio <= 0.2)",
            "note": f"answers differ by {r['rel_diff']:.1e} relative",
        }
    ]


def _train() -> list[Row]:
    from bench.bench_train import run

    return [run()]


def _data() -> list[Row]:
    from bench.bench_data import run

    r = run()
    return [
        {
            "benchmark": "data loading vs training consumption (img/s)",
            "ours": f"{r['loader_mmap_img_s']:.0f} img/s (mmap)",
            "reference": f"{r['train_img_s']:.0f} img/s consumed by training",
            "ratio": r["ratio_mmap"],
            "target": "> 1 (loader never the bottleneck)",
            "note": f"resident: {r['ratio_resident']:.0f}x",
        }
    ]


def _inference() -> list[Row]:
    from bench.bench_inference import run

    return run()


def _service() -> list[Row]:
    from bench.bench_service import batch_scaling, run

    # n=1: where batching can pay (ONNX Runtime's per-image cost at batch 1 is ~3x that at 8+);
    # n=16: such requests skip the queue (ganlib.batching), so batched should equal unbatched.
    return run(n=1) + run(clients=(32,), n=16) + batch_scaling()


def _dissect() -> list[Row]:
    from bench.bench_dissect import run

    r = run()
    return [
        {
            "benchmark": f"dissection sweep, {r['units']} units x {r['samples']} samples vs one forward pass",
            "ours": f"{r['sweep_s']:.3f} s",
            "reference": f"{r['plain_s']:.3f} s (one plain forward)",
            "ratio": r["sweep_over_plain"],
            "target": "report",
            "note": f"{r['per_unit']:.2f} forward-equivalents per unit",
        }
    ]


def _pipeline() -> list[Row]:
    from bench.bench_pipeline import run

    return [run()]


def _interval() -> list[Row]:
    from bench.bench_fid_interval import run

    return run()


def _random_reads() -> list[Row]:
    from bench.bench_random_reads import run

    r = run()
    return [
        {
            "benchmark": "storage read per training image, cold page cache (KB)",
            "ours": f"{r['random_bytes_per_image'] / 1024:.0f} KB (random-read mapping)",
            "reference": f"{r['plain_bytes_per_image'] / 1024:.0f} KB (kernel read-around)",
            "ratio": r["ratio"],
            "target": "< 0.1 for a split the page cache cannot hold",
            "note": f"{r['image_bytes'] / 1024:.0f} KB images, {r['images']} in the split",
        }
    ]


def _gpu() -> list[Row]:
    from bench.bench_gpu import run

    return run()


BENCHES: dict[str, Callable[[], list[Row]]] = {
    "frechet": _frechet,
    "train": _train,
    "data": _data,
    "inference": _inference,
    "service": _service,
    "dissect": _dissect,
    "pipeline": _pipeline,
    "interval": _interval,
    "random_reads": _random_reads,
    "gpu": _gpu,
}


def table(rows: list[Row]) -> str:
    out = [
        "| benchmark | ours | reference | ratio (ours / reference) | target | note |",
        "|---|---|---|---:|---|---|",
    ]
    for r in rows:
        ratio = r.get("ratio")
        ratio_text = f"{ratio:.3f}" if isinstance(ratio, float) else str(ratio)
        cells = [
            r["benchmark"],
            r.get("ours", ""),
            r.get("reference", ""),
            ratio_text,
            r.get("target", ""),
            r.get("note", ""),
        ]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(out)


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()}: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, {gpu}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(BENCHES))
    ap.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    rows: list[Row] = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(BENCHES[name]())
        except Exception as exc:  # one broken bench must not hide the others
            rows.append({"benchmark": name, "ratio": "error", "note": f"{type(exc).__name__}: {exc}"[:200]})
    text = table(rows)
    print(text)
    if not args.no_write:
        header = (
            f"\n## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\nmachine: {machine()}  \n"
            f"command: `python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
        )
        with args.results.open("a") as f:
            if f.tell() == 0:
                f.write("# Benchmark results\n\nEach ratio is ours / reference, measured in the same run.\n")
            f.write(header + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
