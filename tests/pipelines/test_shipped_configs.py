"""Every config under configs/ runs the whole chain: each shipped GAN, made tiny, ends published with both
gates evaluated (a config that crashes somewhere past training would otherwise only show in production)."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import pytest
import yaml
from workspace_helpers import TINY, make_workspace, materialize_tiny

from pipelines.definitions import ASSETS
from pipelines.resources import REPO_ROOT

pytestmark = pytest.mark.slow

SHIPPED = sorted(p.stem for p in (REPO_ROOT / "configs").glob("*.yaml"))

# Each family's shape and loss from its config; only the budgets shrink (the whole set: 11.7 min on 2 cores
# shared with other jobs, load average ~6).
TINY_BUDGET = {
    "train": {"steps": 24, "checkpoint_every": 12, "log_every": 12},
    "eval": {"n_samples": 128, "n_seeds": 2, "fid_max": 1.0e9, "bootstrap_rounds": 20},
    "dissect": {
        "n_samples": 64,
        "candidates": 4,
        "max_remove": 2,
        "effect_samples": 64,
        "effect_seeds": 2,
        "fid_tolerance": 1.0e9,
    },
}


TINY_MODEL = set(TINY["model"])  # the widths the tiny config shrinks
# Configs made for 64/128 px run at their own resolution (the workspace's params.yaml says so, as a user's
# must): the published layout at that size, only thinner and on smaller batches, so CPU time stays small.
AT_RESOLUTION = {
    "model": {"g_width": 4, "d_width": 4},
    "train": {"batch_size": 16, "steps": 4, "checkpoint_every": 4, "log_every": 2},
    "dissect": {"n_samples": 32, "candidates": 2},
}


def _shipped(config_name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "configs" / f"{config_name}.yaml").read_text())


def test_every_config_is_covered() -> None:
    assert SHIPPED == ["dcgan", "default", "sngan", "sngan-128", "sngan-64", "stylegan-lite", "wgan-gp"]


def _meta(result, asset: str) -> dict:
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key.path[-1] == asset]
    assert mats, f"{asset} was not materialized"
    return {k: v.value for k, v in mats[-1].materialization.metadata.items()}


@pytest.mark.parametrize("config_name", SHIPPED)
def test_shipped_config_runs_the_whole_chain(config_name: str, tmp_path) -> None:
    shipped = _shipped(config_name)
    resolution = shipped["model"].get("resolution")
    budget = json.loads(json.dumps(TINY_BUDGET))
    if resolution:
        for section, values in AT_RESOLUTION.items():
            budget.setdefault(section, {}).update(values)
    ws, store = make_workspace(tmp_path / "ws", resolution or 16), tmp_path / "store"
    result = materialize_tiny(
        ws, store, instance=dg.DagsterInstance.ephemeral(), config_name=config_name, **budget
    )
    failures = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    assert result.success, failures
    assert {m.asset_key.path[-1] for m in result.get_asset_materialization_events()} == {
        a.key.path[-1] for a in ASSETS
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"fid_gate": True, "prune_gate": True}

    # A published ONNX that matches its manifest, trained by this config (only the budgets shrank).
    latest = json.loads((store / "digits-tiny" / "latest.json").read_text())
    version = store / "digits-tiny" / latest["version"]
    manifest = json.loads((version / "manifest.json").read_text())
    assert hashlib.sha256((version / "generator.onnx").read_bytes()).hexdigest() == manifest["sha256"]
    assert manifest["config"]["name"] == config_name
    for section in ("model", "loss"):
        for key, value in shipped.get(section, {}).items():
            if key not in TINY_MODEL:
                assert manifest["config"][section][key] == value, (section, key)

    # Pruning ran with the flaw judge on every family (all have exactly prunable layers); when it removed
    # nothing, it says why.
    pruned = _meta(result, "pruned_generator")
    assert 0 <= pruned["judge_accuracy"] <= 1 and pruned["judge_lift"] >= 0
    if pruned["units_removed"] == 0:
        assert pruned["params_before"] == pruned["params_after"]
        assert pruned["pruning"].startswith("nothing removed: ")
    else:
        assert pruned["params_after"] < pruned["params_before"]
        assert pruned["judge_trusted"] and pruned["pruning"].startswith("removed ")

    # The published generator makes images at the resolution the data was preprocessed to.
    import onnxruntime as ort

    session = ort.InferenceSession(str(version / "generator.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert int(meta["resolution"]) == (resolution or 16)
