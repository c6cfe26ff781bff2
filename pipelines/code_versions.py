"""Code versions for the assets: a hash of the source of the ganlib modules each asset runs.

Dagster marks an asset stale when its code version differs from the one its last materialization
recorded, so editing, say, ``ganlib/losses.py`` marks ``trained_generator`` (and everything downstream)
stale in the UI, while editing ``ganlib/export.py`` marks only ``onnx_generator``. Hashing the files
instead of a hand-bumped string means nobody has to remember to bump it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@cache
def code_version(*paths: str) -> str:
    """sha256 (first 12 hex) of the named source files and packages (``.py`` files, sorted), relative to
    the repository root, e.g. ``code_version("ganlib/training.py", "ganlib/models")``."""
    digest = hashlib.sha256()
    for rel in paths:
        root = REPO / rel
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        if not files or not all(f.is_file() for f in files):
            raise FileNotFoundError(f"code_version: no source at {root}")
        for f in files:
            digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:12]


# What each asset runs, beyond its own module under pipelines/assets/.
DATA = ("ganlib/data", "pipelines/assets/data.py", "pipelines/dvc.py")
REFERENCE = ("ganlib/scoring.py", "ganlib/metrics", "ganlib/pixels.py", "pipelines/assets/model.py")
TRAINING = (
    "ganlib/training.py",
    "ganlib/batch_order.py",
    "ganlib/ema.py",
    "ganlib/pixels.py",
    "ganlib/models",
    "ganlib/losses.py",
    "ganlib/augment.py",
    "ganlib/egan.py",
    "ganlib/checkpoint.py",
    "ganlib/config.py",
    "pipelines/assets/model.py",
)
EVALUATION = (*REFERENCE, "ganlib/latent.py", "pipelines/gate_decisions.py")
PRUNING = (
    *EVALUATION,
    "ganlib/units.py",
    "ganlib/prune.py",
    "ganlib/flaw_judge.py",
    "ganlib/flaw_dissect.py",
    "ganlib/ablation_effects.py",
    "ganlib/dissection_report.py",
    "ganlib/artifact_pruning.py",
    "ganlib/viz.py",
)
EXPORT = ("ganlib/export.py", "ganlib/store.py", "pipelines/assets/export.py", "pipelines/provenance.py")
