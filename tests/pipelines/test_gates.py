"""The fid_gate's champion comparison, as a pure decision and through the evaluation asset with a real
champion published in the object store."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines import gates


def _score(fid: float, ci: tuple[float, float] | None = None, backbone: str = "domain:abc") -> dict:
    return {
        "fid": fid,
        "fid_ci": list(ci or (fid, fid)),
        "backbone": backbone,
        "label": f"fid[{backbone}]@2048",
    }


def test_first_run_uses_the_absolute_bound_only():
    passed = gates.fid_gate(_score(30.0), None, fid_max=45.0, tolerance=0.1)
    failed = gates.fid_gate(_score(50.0), None, fid_max=45.0, tolerance=0.1)
    assert passed["passed"] and not failed["passed"]
    assert "no champion" in " ".join(passed["reasons"])
    assert "absolute bound" in " ".join(failed["reasons"])


def test_regression_beyond_tolerance_fails_and_within_passes():
    champion = {"fid": 20.0, "backbone": "domain:abc", "version": "v1"}
    ok = gates.fid_gate(_score(21.9), champion, fid_max=45.0, tolerance=0.1)  # 21.9 < 22.0
    bad = gates.fid_gate(_score(25.0, (24.0, 26.0)), champion, fid_max=45.0, tolerance=0.1)
    assert ok["passed"] and ok["champion_fid"] == 20.0
    assert not bad["passed"]
    assert "worse than champion" in " ".join(bad["reasons"])


def test_noise_alone_cannot_fail_a_model():
    """Mean above the limit, but the interval reaches below it: not a real regression."""
    champion = {"fid": 20.0, "backbone": "domain:abc", "version": "v1"}
    decision = gates.fid_gate(_score(22.5, (21.0, 24.0)), champion, fid_max=45.0, tolerance=0.1)
    assert decision["passed"]


def test_champion_from_another_backbone_is_not_compared():
    champion = {"fid": 1.0, "backbone": "inception", "version": "v1"}
    decision = gates.fid_gate(_score(30.0), champion, fid_max=45.0, tolerance=0.1)
    assert decision["passed"] and decision["champion_fid"] is None
    assert "not comparable" in " ".join(decision["reasons"])


def test_prune_gate():
    assert gates.prune_gate(20.0, 20.9, 0.05)["passed"]
    assert not gates.prune_gate(20.0, 21.5, 0.05)["passed"]


@pytest.mark.slow
def test_evaluation_asset_fails_the_gate_against_a_better_published_champion(tmp_path):
    """A champion published with a much lower FID on the same backbone makes the new model a regression."""
    from model_helpers import spread_generator
    from workspace_helpers import make_workspace, tiny_overrides

    from ganlib.export import export_onnx
    from ganlib.store import open_store, publish
    from pipelines.definitions import ASSETS, CHECKS, build_resources
    from pipelines.resources import GanConfigResource

    ws, store = make_workspace(tmp_path / "ws"), tmp_path / "store"
    overrides = tiny_overrides(train={"steps": 20}, eval={"n_samples": 256, "fid_max": 1e6})
    resources = build_resources(ws, str(store), gan_config=GanConfigResource(overrides_json=overrides))
    instance = dg.DagsterInstance.ephemeral()
    upstream = ["raw_images", "processed_dataset", "fid_reference", "trained_generator"]
    first = dg.materialize([*ASSETS, *CHECKS], resources=resources, selection=upstream, instance=instance)
    assert first.success
    backbone = first.output_for_node("fid_reference")["backbone"]  # the champion must share it to be compared
    onnx_path = tmp_path / "champion.onnx"
    meta = {
        "model_name": "digits-tiny",
        "model_version": "v0",
        "config_hash": "-",
        "data_hash": "-",
        "fid": "0.5",
        "fid_backbone": backbone,
    }
    info = export_onnx(spread_generator(10, family="dcgan", resolution=16), onnx_path, metadata=meta)
    publish(
        open_store(store),
        "digits-tiny",
        "v0",
        onnx_path,
        {**info.manifest_fields(), "fid": {"value": 0.5, "backbone": backbone}},
    )

    result = dg.materialize(
        [*ASSETS, *CHECKS],
        resources=resources,
        selection=["generator_evaluation"],
        instance=instance,
        raise_on_error=False,
    )
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "fid_gate" and check.passed is False
    assert "worse than champion 0.500" in check.metadata["reasons"].value
    evaluation = result.output_for_node("generator_evaluation")
    assert evaluation["gate"]["champion_version"] == "v0" and evaluation["gate"]["passed"] is False
