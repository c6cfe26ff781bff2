"""What is published is what was measured: each way around the gates, tried as a data scientist would
(single-asset materializations after a config change, an edited stored value, a replaced checkpoint),
is refused with the identity that differs, and the object store stays exactly as it was.

One tiny chain is materialized once; the scenarios then run in file order against its workspace and
Dagster instance, each leaving the state the next one describes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from workspace_helpers import materialize_tiny, step_failure, tiny_chain

from ganlib.store import sha256_file
from pipelines import gate_decisions
from pipelines.types import Evaluation, PrunedGenerator, TrainedGenerator

pytestmark = pytest.mark.slow

EXPORT_ALONE = ["onnx_generator"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    ws, store, instance, result = tiny_chain(tmp_path_factory.mktemp("provenance"))
    assert result.success
    return ws, store, instance, result


def _snapshot(store: Path) -> dict[str, str]:
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and ".gan-store" not in p.parts
    }


def _stored(ws: Path, asset: str) -> Path:
    return ws / "outputs" / "dagster_io" / f"{asset}.json"


def _value(result, asset: str):
    return result.output_for_node(asset)


def test_eval_only_change_reevaluates_without_retraining_and_rescored_champion(chain):
    ws, store, instance, first = chain
    trained_before: TrainedGenerator = _value(first, "trained_generator")
    checkpoint_bytes = Path(trained_before.checkpoint).read_bytes()
    published_before = _snapshot(store)

    # A stricter-but-still-passing bound: only the eval section changes.
    changed = {"eval": {"fid_max": 9.0e5}}
    second = materialize_tiny(ws, store, ["trained_generator", "generator_evaluation"], instance, **changed)
    assert second.success
    trained: TrainedGenerator = _value(second, "trained_generator")
    assert trained.checkpoint == trained_before.checkpoint
    assert Path(trained.checkpoint).read_bytes() == checkpoint_bytes  # reused byte for byte
    assert trained.checkpoint_sha256 == trained_before.checkpoint_sha256
    train_meta = next(
        m.materialization.metadata
        for m in second.get_asset_materialization_events()
        if m.asset_key.path[-1] == "trained_generator"
    )
    assert train_meta["resumed_from_step"].value == 300  # nothing trained

    evaluation: Evaluation = _value(second, "generator_evaluation")
    old_evaluation: Evaluation = _value(first, "generator_evaluation")
    assert evaluation.evaluation_digest != old_evaluation.evaluation_digest
    assert evaluation.gate.limit == 9.0e5

    # The champion (published by the first run) was re-scored in this run, under the challenger's protocol.
    champion = evaluation.champion_score
    latest = json.loads((store / "digits-tiny" / "latest.json").read_text())
    assert champion is not None and champion["version"] == latest["version"]
    for key in ("backbone", "weights_sha256", "n_fake", "n_seeds", "reference_split"):
        assert champion["protocol"][key] == evaluation.score["protocol"][key]
    assert champion["seeds"] == evaluation.score["seeds"]
    assert evaluation.gate.champion_fid == champion["fid"]
    # The decision is the one both fresh numbers give.
    again = gate_decisions.fid_gate_decision(
        evaluation.score,
        champion,
        fid_max=9.0e5,
        tolerance=0.10,
        judged_sha256=trained.checkpoint_sha256,
        settings_digest=evaluation.evaluation_digest,
    )
    assert again == evaluation.gate
    # The champion is the published pruned model run by ONNX Runtime; the first run measured that same model
    # in PyTorch on other latents: the two FIDs agree within the intervals' width.
    pruned_first: PrunedGenerator = _value(first, "pruned_generator")
    half = evaluation.score["fid_ci"][1] - evaluation.score["fid"]
    assert abs(champion["fid"] - pruned_first.fid_after) < 3 * half + 1.0

    # The stored pruned generator was judged under the old eval settings: the export alone refuses.
    refused = materialize_tiny(ws, store, EXPORT_ALONE, instance, **changed)
    assert not refused.success
    message = step_failure(refused)
    assert "onnx_generator refused" in message and "Re-materialize pruned_generator" in message
    assert _snapshot(store) == published_before

    # Re-materializing the rest asset by asset (with their checks) publishes: the happy single-asset path.
    for asset in ("pruned_generator", "onnx_generator"):
        assert materialize_tiny(ws, store, [asset], instance, **changed).success
    after = _snapshot(store)
    assert len(after) == len(published_before) + 2  # one new version: generator.onnx + manifest.json
    latest = json.loads((store / "digits-tiny" / "latest.json").read_text())
    manifest = json.loads((store / "digits-tiny" / latest["version"] / "manifest.json").read_text())
    # The manifest records the config that trained the weights, and the documented hash of it.
    assert manifest["config"]["train"] == trained.config["train"]
    assert manifest["config"]["eval"]["fid_max"] == 9.0e5
    canonical = json.dumps(manifest["config"], sort_keys=True, separators=(",", ":"))
    assert manifest["config_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    ids = manifest["extra"]["identities"]
    assert ids["checkpoint_sha256"] == trained.checkpoint_sha256
    assert ids["training_digest"] == trained.training_digest


def test_edited_stored_evaluation_is_refused(chain):
    ws, store, instance, _ = chain
    before = _snapshot(store)
    path = _stored(ws, "generator_evaluation")
    original = path.read_text()
    doc = json.loads(original)
    doc["value"]["score"]["fid"] = 0.001  # a better number than was measured
    path.write_text(json.dumps(doc))
    try:
        refused = materialize_tiny(ws, store, EXPORT_ALONE, instance, eval={"fid_max": 9.0e5})
        assert not refused.success
        message = step_failure(refused)
        assert "no fid_gate result in this Dagster instance for the stored generator_evaluation" in message
        assert _snapshot(store) == before
    finally:
        path.write_text(original)


def test_stored_values_are_json_records_never_pickles(chain):
    ws, store, instance, _ = chain
    path = _stored(ws, "pruned_generator")
    original = path.read_bytes()
    import pickle

    path.write_bytes(pickle.dumps({"checkpoint": "/etc/passwd"}))
    try:
        refused = materialize_tiny(ws, store, EXPORT_ALONE, instance, eval={"fid_max": 9.0e5})
        assert not refused.success
        message = step_failure(refused)
        assert f"the stored value of pruned_generator at {path} is not a valid record" in message
    finally:
        path.write_bytes(original)


def test_replaced_pruned_checkpoint_is_refused(chain):
    ws, store, instance, _ = chain
    before = _snapshot(store)
    pruned = PrunedGenerator.model_validate(json.loads(_stored(ws, "pruned_generator").read_text())["value"])
    checkpoint = Path(pruned.checkpoint)
    original = checkpoint.read_bytes()
    checkpoint.write_bytes(original + b"\0")  # not the checkpoint prune_gate judged
    try:
        refused = materialize_tiny(ws, store, EXPORT_ALONE, instance, eval={"fid_max": 9.0e5})
        assert not refused.success
        message = step_failure(refused)
        assert f"{checkpoint} changed since pruned_generator recorded it" in message
        assert _snapshot(store) == before
    finally:
        checkpoint.write_bytes(original)
    assert sha256_file(checkpoint)[0] == pruned.checkpoint_sha256


def test_config_changed_between_runs_is_refused_at_every_single_asset(chain):
    """Train with fewer steps (config B), then materialize each downstream asset alone, as a user would."""
    ws, store, instance, _ = chain
    before = _snapshot(store)
    config_b = {"train": {"steps": 20}, "eval": {"fid_max": 9.0e5}}
    trained = materialize_tiny(ws, store, ["trained_generator"], instance, **config_b)
    assert trained.success  # a new, never-evaluated checkpoint

    pruned = materialize_tiny(ws, store, ["pruned_generator"], instance, **config_b)
    assert not pruned.success
    assert "generator_evaluation judged another checkpoint than trained_generator holds" in step_failure(
        pruned
    )

    export = materialize_tiny(ws, store, EXPORT_ALONE, instance, **config_b)
    assert not export.success
    message = step_failure(export)
    assert "the trained weights come from other model/loss/train settings than the config in force" in message
    assert "Re-materialize trained_generator" in message

    # Evaluated now, the 20-step model is a real regression against the champion re-scored in the same run.
    evaluated = materialize_tiny(ws, store, ["generator_evaluation"], instance, **config_b)
    (check,) = evaluated.get_asset_check_evaluations()
    assert check.check_name == "fid_gate" and check.passed is False
    assert "re-scored in this run" in check.metadata["reasons"].value
    assert _snapshot(store) == before


def test_evaluation_of_another_checkpoint_is_refused(chain):
    """The stored evaluation now judged checkpoint B (and passed, with a lenient tolerance), while the stored
    pruned generator came from checkpoint A: the export refuses to pair them."""
    ws, store, instance, _ = chain
    before = _snapshot(store)
    config_b = {"train": {"steps": 20}, "eval": {"fid_max": 9.0e5, "champion_tolerance": 1.0e6}}
    evaluated = materialize_tiny(ws, store, ["generator_evaluation"], instance, **config_b)
    assert evaluated.success
    export = materialize_tiny(ws, store, EXPORT_ALONE, instance, **config_b)
    assert not export.success
    message = step_failure(export)
    assert "pruned_generator was derived from another checkpoint than generator_evaluation judged" in message
    assert _snapshot(store) == before
