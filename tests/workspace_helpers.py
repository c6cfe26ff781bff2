"""Helpers for pipeline tests: a temp git + DVC workspace and a tiny config so the chain runs in minutes."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from pipelines.dvc import init_workspace
from pipelines.resources import REPO_ROOT

# A CPU-tiny version of the default config: the whole chain in well under 3 minutes on 2 cores.
TINY = {
    "model": {"g_width": 16, "d_width": 16, "z_dim": 32},
    "train": {"steps": 300, "batch_size": 64, "checkpoint_every": 100, "log_every": 50},
    "eval": {"n_samples": 512, "n_seeds": 2, "fid_max": 1.0e6},
    "dissect": {
        "n_samples": 128,
        "candidates": 4,
        "max_remove": 2,
        "effect_samples": 128,
        "effect_seeds": 2,
        "fid_tolerance": 1.0,
    },
    "export": {"model_name": "digits-tiny"},
}


def make_workspace(root: Path, resolution: int = 16) -> Path:
    ws = init_workspace(root, REPO_ROOT)
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["preprocess"]["resolution"] = resolution
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return ws


def tiny_overrides(**sections: dict) -> dict:
    merged = json.loads(json.dumps(TINY))
    for key, values in sections.items():
        merged.setdefault(key, {}).update(values)
    return merged


def tiny_config(config_name: str = "default", **sections: dict):
    """The gan_config resource for ``configs/<config_name>.yaml`` made tiny, with ``sections`` merged over it."""
    from pipelines.resources import GanConfigResource

    return GanConfigResource.with_overrides(config_name, tiny_overrides(**sections))


def materialize_tiny(
    ws: Path, store: Path, selection=None, instance=None, config_name: str = "default", **sections: dict
):
    """Materialize (a selection of) the chain in-process on a shipped config made tiny, as a user's launch
    would."""
    import dagster as dg

    from pipelines.definitions import ASSETS, CHECKS, build_resources

    resources = build_resources(ws, str(store), gan_config=tiny_config(config_name, **sections))
    return dg.materialize(
        [*ASSETS, *CHECKS],
        resources=resources,
        selection=selection,
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def tiny_chain(root: Path):
    """(workspace, store, instance, result): the whole chain materialized on the tiny default config in a
    fresh workspace under ``root``, on its own ephemeral instance."""
    import dagster as dg

    ws, store = make_workspace(root / "ws"), root / "store"
    instance = dg.DagsterInstance.ephemeral()
    return ws, store, instance, materialize_tiny(ws, store, instance=instance)


def step_failure(result) -> str:
    """The first failed step's error message (the one line a user reads)."""
    failure = next(e for e in result.all_events if e.is_step_failure)
    return failure.step_failure_data.error.message
