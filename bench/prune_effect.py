"""The pruning stage on a trained checkpoint, exactly as the ``pruned_generator`` asset runs it, and one JSON
line of what it found: the flaw judge's lift and accuracy, the effects with their noise bound, what was
removed, FID and the low-realism fraction before/after with their 95% intervals.

    OMP_NUM_THREADS=1 .venv/bin/python -m bench.prune_effect --checkpoint CKPT --config default \\
        --backbone BACKBONE.pt --reference REFERENCE.npz --out DIR [dissect.min_lift=3 ...]

The stage sections (eval, dissect) come from ``configs/<--config>`` with the overrides, the model sections
from the checkpoint (``GANConfig.judged_with``). ``--backbone``/``--reference``: the domain backbone and the
FID reference of the data the checkpoint was trained on (outputs/backbones/domain-<hash>.pt and
outputs/fid_reference/<hash>/domain-<hash>.npz in a workspace). ``DIR`` gets dissection.md, prune.json and
the pictures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    import torch

    from ganlib.artifact_pruning import dissect_and_prune
    from ganlib.config import GANConfig, load_config, parse_overrides
    from ganlib.metrics import load_domain_backbone

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--config", default="default")
    ap.add_argument("--backbone", type=Path, required=True)
    ap.add_argument("--reference", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()

    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    trained = GANConfig.model_validate(json.loads(state["config"]))
    cfg = trained.judged_with(load_config(args.config, parse_overrides(args.overrides)))
    backbone = load_domain_backbone(args.backbone)
    t0 = time.perf_counter()
    r = dissect_and_prune(
        args.checkpoint,
        cfg,
        backbone=backbone,
        reference_stats=args.reference,
        data_hash=backbone.data_hash,
        out_dir=args.out,
    )
    wall = time.perf_counter() - t0
    (args.out / "prune.json").write_text(
        json.dumps({k: v for k, v in r.items() if k != "score_after"}, indent=2)
    )
    judge, eff, sc = r["judge"] or {}, r["effects"] or {}, r["scores"]
    print(
        json.dumps(
            {
                "checkpoint": str(args.checkpoint),
                "family": trained.model.family,
                "steps": int(state["step"]),
                "judge_lift": judge.get("lift"),
                "judge_lift_shuffled": judge.get("lift_shuffled"),
                "judge_accuracy": judge.get("accuracy"),
                "judge_trusted": judge.get("trusted"),
                "noise_fid_sd": eff.get("noise_fid_sd"),
                "noise_low_sd": eff.get("noise_low_sd"),
                "confirmed": eff.get("confirmed"),
                "removed": r["removed"],
                "note": r["note"],
                "fid_label": sc["label"],
                "fid_before": [sc["fid_before"], *sc["fid_ci_before"]],
                "fid_after": [sc["fid_after"], *sc["fid_ci_after"]],
                "low_realism_before": sc["low_before"],
                "low_realism_after": sc["low_after"],
                "low_realism_delta": sc["low_delta"],
                "params": [r["params_before"], r["params_after"]],
                "wall_s": round(wall, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
