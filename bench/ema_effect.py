"""FID[domain] of one training run's EMA and live generators, with the pipeline's scorer and floor.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.ema_effect --root /tmp/ema-bench [train.steps=4000 ...]

Builds the digits data (params.yaml, 32 px) and the domain backbone + reference once under ``--root``,
trains ``configs/<--config>`` with the overrides, and prints one JSON line per generator (EMA, live) and
the real floor: FID with its 95% interval, precision, recall, the training's CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    from ganlib.config import load_config, parse_overrides
    from ganlib.data.shards import load_split
    from ganlib.models import load_generator
    from ganlib.samples import save_samples
    from ganlib.scoring import score_generator, score_real_floor
    from ganlib.training import train

    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--config", default="default")
    ap.add_argument("--tag", default="run")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    root: Path = args.root
    cfg = load_config(args.config, _merge(parse_overrides(args.overrides), {"train": {"device": "cpu"}}))

    processed, backbone, ref_path = prepare(root, cfg)

    run_dir = root / "runs" / args.tag
    t0 = time.process_time()
    result = train(cfg, load_split(processed, "train"), run_dir, progress=False)
    cpu_s = time.process_time() - t0

    def row(variant: str, score: dict) -> None:
        keep = ("fid", "fid_ci", "precision", "recall", "label")
        print(json.dumps({"variant": variant, "steps": result.steps, "cpu_s": round(cpu_s, 1)}
                         | {k: score.get(k) for k in keep}))  # fmt: skip

    # A 10x10 grid (one class a column) of the EMA generator: within-class variety is seen down a column.
    grid = save_samples(load_generator(result.checkpoint, ema=True), root / "grids" / f"{args.tag}.png")
    print(json.dumps({"grid": str(grid)}))
    for variant, ema in (("ema", True), ("live", False)):
        row(f"{args.tag}/{variant}", score_generator(load_generator(result.checkpoint, ema=ema), backbone,
                                                     ref_path, cfg.eval, "bench.dir", "cpu"))  # fmt: skip
    # The pre-fix EMA generator: its weights with the live generator's BN running statistics.
    old = load_generator(result.checkpoint, ema=True)
    live_bn = {k: v for k, v in load_generator(result.checkpoint, ema=False).state_dict().items()
               if k.endswith(("running_mean", "running_var"))}  # fmt: skip
    old.load_state_dict(old.state_dict() | live_bn)
    row(
        f"{args.tag}/ema-with-live-bn-stats",
        score_generator(old, backbone, ref_path, cfg.eval, "bench.dir", "cpu"),
    )
    row("floor", score_real_floor(backbone, processed, ref_path, cfg.eval, "bench.dir"))


def prepare(root: Path, cfg):
    """The digits data (params.yaml, 32 px), the domain backbone and the FID reference under ``root``, made
    once and reused by every benchmark run there."""
    from ganlib.data.preprocess import load_params, preprocess
    from ganlib.data.sources import digits_images, ingest_arrays
    from ganlib.scoring import build_backbone, compute_reference
    from pipelines.resources import REPO_ROOT

    processed = root / "processed"
    if not (processed / "train").exists():
        images, labels = digits_images()
        ingest_arrays(images, labels, root / "raw")
        preprocess(root / "raw", processed, load_params(REPO_ROOT / "params.yaml"))
    backbone = build_backbone(cfg.eval, processed, "bench.dir", root / "backbone", "cpu")
    ref_path = root / "reference.npz"
    if not ref_path.exists():
        compute_reference(backbone, processed, ref_path)
    return processed, backbone, ref_path


def _merge(a: dict, b: dict) -> dict:
    out = {k: dict(v) for k, v in a.items()}
    for k, v in b.items():
        out.setdefault(k, {}).update(v)
    return out


if __name__ == "__main__":
    main()
