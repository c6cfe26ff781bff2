"""Pipeline overhead: materializing a no-op-sized chain through Dagster (with DVC) vs calling the same
ganlib functions directly, in the same process."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

CONFIG = {
    "model": {"g_width": 8, "d_width": 8, "z_dim": 16},
    "train": {"steps": 2, "batch_size": 16, "checkpoint_every": 2, "log_every": 1},
    "eval": {"n_samples": 64, "n_seeds": 2, "fid_max": 1e9},
    "dissect": {"enabled": False},
    "export": {"model_name": "bench"},
}


def direct(root: Path) -> float:
    """The chain's ganlib calls, in order, without Dagster or DVC."""
    from ganlib.config import parse_config
    from ganlib.data.preprocess import load_params, preprocess
    from ganlib.data.shards import load_split
    from ganlib.data.sources import digits_images, ingest_arrays
    from ganlib.export import check_parity, export_onnx
    from ganlib.models import load_generator
    from ganlib.scoring import build_backbone, compute_reference, score_generator
    from ganlib.store import open_store, publish
    from ganlib.training import train
    from pipelines.resources import REPO_ROOT

    t0 = time.perf_counter()
    cfg = parse_config(CONFIG)
    images, labels = digits_images()
    ingest_arrays(images, labels, root / "raw")
    params = load_params(REPO_ROOT / "params.yaml")
    preprocess(root / "raw", root / "processed", {**params, "resolution": 16})
    backbone = build_backbone(cfg.eval, root / "processed", "bench.dir", root / "bb", "cpu")
    ref = compute_reference(backbone, root / "processed", root / "ref.npz")
    result = train(cfg, load_split(root / "processed", "train"), root / "train", progress=False)
    g = load_generator(result.checkpoint)
    score = score_generator(g, backbone, ref.path, cfg.eval, "bench", "cpu")
    meta = {
        "model_name": "bench",
        "model_version": "v1",
        "config_hash": cfg.training_digest(),
        "data_hash": "bench",
        "fid": str(score["fid"]),
        "fid_backbone": score["label"],
    }
    info = export_onnx(g, root / "g.onnx", metadata=meta)
    check_parity(g, root / "g.onnx")
    publish(open_store(root / "store"), "bench", "v1", root / "g.onnx", {**info.manifest_fields()})
    return time.perf_counter() - t0


def through_dagster(root: Path) -> float:
    import dagster as dg
    import yaml

    from pipelines.definitions import ASSETS, CHECKS, build_resources
    from pipelines.dvc import init_workspace
    from pipelines.resources import REPO_ROOT, GanConfigResource

    t0 = time.perf_counter()
    ws = init_workspace(root / "ws", REPO_ROOT)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["preprocess"]["resolution"] = 16
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    resources = build_resources(
        ws,
        str(root / "store"),
        gan_config=GanConfigResource.with_overrides("default", CONFIG),
    )
    result = dg.materialize([*ASSETS, *CHECKS], resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    return time.perf_counter() - t0


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        direct(root / "warm")  # warm imports and caches for both paths
        t_direct = direct(root / "d")
        t_dagster = through_dagster(root / "p")
    return {
        "benchmark": "pipeline overhead: no-op-sized chain (Dagster + DVC vs direct ganlib calls)",
        "ours": f"{t_dagster:.1f} s",
        "reference": f"{t_direct:.1f} s (direct calls)",
        "ratio": t_dagster / t_direct,
        "target": "report",
        "note": "includes DVC subprocesses and dvc add",
    }


if __name__ == "__main__":
    r = run()
    print(f"{r['benchmark']}: {r['ours']} vs {r['reference']}: {r['ratio']:.2f}x", file=sys.stdout)
