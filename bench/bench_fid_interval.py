"""How wide the FID interval really is on the default data: over fake seeds only (the old interval) and
over both sides (fake seeds + a bootstrap over the 359 real val images), next to the real train-vs-val floor.

Trains the default config (2,000 steps) on ``data/processed`` (``make run`` prepares it) once, caches the
checkpoint under ``outputs/bench/fid-interval/``, then scores with the pipeline's own functions.
Usage: ``python -m bench --only interval`` (about 3 CPU-minutes on 2 cores, most of it training).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.resources import REPO_ROOT


def run(
    data: Path = REPO_ROOT / "data" / "processed",
    out: Path = REPO_ROOT / "outputs" / "bench" / "fid-interval",
):
    from ganlib.config import load_config
    from ganlib.data.shards import load_split
    from ganlib.models import load_generator
    from ganlib.scoring import build_backbone, compute_reference, score_generator, score_real_floor
    from ganlib.training import train

    if not (data / "meta.json").is_file():
        raise SystemExit(f"{data} has no processed dataset: run `make run` (or its data assets) first")
    cfg = load_config("default")
    result = train(cfg, load_split(data, "train"), out / "train", resume=True, progress=False)
    backbone = build_backbone(cfg.eval, data, "bench", out / "backbone", "cpu")
    reference = compute_reference(backbone, data, out / "reference.npz")
    model = score_generator(
        load_generator(result.checkpoint), backbone, reference.path, cfg.eval, "bench", "cpu"
    )
    floor = score_real_floor(backbone, data, reference.path, cfg.eval, "bench")

    def width(ci: list[float]) -> float:
        return ci[1] - ci[0]

    rows = []
    for what, s in (("default model", model), ("real floor (train images as a generator)", floor)):
        rows.append(
            {
                "benchmark": f"FID interval width, {what}: both sides vs fake seeds only",
                "ours": f"{s['fid']:.2f} [{s['fid_ci'][0]:.2f}, {s['fid_ci'][1]:.2f}]",
                "reference": f"[{s['fid_ci_fake_only'][0]:.2f}, {s['fid_ci_fake_only'][1]:.2f}]",
                "ratio": width(s["fid_ci"]) / width(s["fid_ci_fake_only"]),
                "target": "report",
                "note": f"real-side sd {s['fid_se_real']:.2f}; KID {s['kid']:.4f}; recall {s['recall']:.3f}",
            }
        )
    return rows
