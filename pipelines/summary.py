"""After `make run`: print where the results of the latest run are (sample grid, scores, published model)."""

from __future__ import annotations

import json
import sys

from pipelines.resources import Workspace


def main() -> int:
    ws = Workspace().path
    runs = sorted((ws / "outputs" / "train").glob("*/evaluation.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        print("no evaluated run under outputs/train yet")
        return 1
    run_dir = runs[-1].parent
    report = json.loads(runs[-1].read_text())
    score, gate = report["score"], report["gate"]
    print(f"run folder:     {run_dir}")
    print(f"sample grid:    {run_dir / 'samples.png'}")
    print(f"loss curves:    {run_dir / 'losses.png'}")
    print(
        f"{score['label']} = {score['fid']:.3f}  (95% CI {score['fid_ci'][0]:.3f}..{score['fid_ci'][1]:.3f}, "
        f"over fake seeds and the reference)"
    )
    floor = score.get("floor")
    if floor:
        print(f"floor = {floor['fid']:.3f}   (real train images scored as a generator, same protocol)")
    if score.get("precision") is not None:
        print(f"precision/recall: {score['precision']:.3f} / {score['recall']:.3f}")
    for warning in score.get("warnings", []):
        print(f"warning:        {warning}")
    print(f"fid_gate:       {'PASS' if gate['passed'] else 'FAIL'} - {'; '.join(gate['reasons'])}")
    prune = run_dir / "pruned" / "prune.json"
    if prune.is_file():
        p = json.loads(prune.read_text())
        print(
            f"pruning:        {p['units_removed']} units removed, params {p['params_before']} -> {p['params_after']}, "
            f"FID {p['fid_before']:.3f} -> {p['fid_after']:.3f}, prune_gate {'PASS' if p['gate']['passed'] else 'FAIL'}"
        )
    published = run_dir / "pruned" / "onnx" / "published.json"
    if published.is_file():
        print(f"published:      {json.loads(published.read_text())['uri']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
