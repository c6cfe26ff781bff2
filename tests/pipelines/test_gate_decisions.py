"""The gate decisions as pure functions of scores (the champion re-scored in the same run is tested through
the assets in test_provenance.py)."""

from __future__ import annotations

from pipelines import gate_decisions


def _score(
    fid: float, ci: tuple[float, float] | None = None, backbone: str = "domain:abc", weights: str = "w1"
) -> dict:
    return {
        "fid": fid,
        "fid_ci": list(ci or (fid, fid)),
        "fid_per_seed": [fid],
        "seeds": [0],
        "label": f"fid[{backbone}]@2048",
        "protocol": {
            "backbone": backbone,
            "weights_sha256": weights,
            "n_fake": 2048,
            "reference_split": "val",
        },
    }


def _champion(fid: float, **kw) -> dict:
    return {**_score(fid, **kw), "version": "v1"}


def _gate(score: dict, champion: dict | None, fid_max: float = 45.0, tolerance: float = 0.1):
    return gate_decisions.fid_gate_decision(
        score, champion, fid_max=fid_max, tolerance=tolerance, judged_sha256="c" * 64, settings_digest="e"
    )


def test_first_run_uses_the_absolute_bound_only():
    passed = _gate(_score(30.0), None)
    failed = _gate(_score(50.0), None)
    assert passed.passed and not failed.passed
    assert "no champion" in " ".join(passed.reasons)
    assert "absolute bound" in " ".join(failed.reasons)


def test_regression_beyond_tolerance_fails_and_within_passes():
    ok = _gate(_score(21.9), _champion(20.0))  # 21.9 < 22.0
    bad = _gate(_score(25.0, (24.0, 26.0)), _champion(20.0))
    assert ok.passed and ok.champion_fid == 20.0 and ok.champion_version == "v1"
    assert not bad.passed
    assert "worse than champion v1 (re-scored in this run: 20.000)" in " ".join(bad.reasons)


def test_noise_alone_cannot_fail_a_model():
    """Mean above the limit, but the interval reaches below it: not a real regression."""
    assert _gate(_score(22.5, (21.0, 24.0)), _champion(20.0)).passed


def test_champion_scored_under_another_protocol_is_not_compared():
    """ganlib's comparability rule decides: same backbone name but other weights (a retrained backbone)."""
    decision = _gate(_score(30.0), _champion(1.0, weights="w2"))
    assert decision.passed and decision.champion_fid is None
    assert "different weights" in " ".join(decision.reasons)
    other = _gate(_score(30.0), _champion(1.0, backbone="inception"))
    assert other.passed and "different backbones" in " ".join(other.reasons)


def test_unscorable_champion_is_said_not_compared():
    champion = {"version": "v1", "unscorable": "3-channel model, 1-channel data", "fid": None}
    decision = _gate(_score(30.0), champion)
    assert decision.passed and decision.champion_fid is None
    assert "could not be scored here (3-channel model, 1-channel data)" in " ".join(decision.reasons)


def _prune(after: dict, champion: dict | None, before: float = 20.0):
    return gate_decisions.prune_gate_decision(
        before,
        after,
        champion,
        tolerance=0.05,
        champion_tolerance=0.1,
        judged_sha256="p" * 64,
        settings_digest="d",
    )


def test_prune_gate():
    assert _prune(_score(20.9), None).passed
    assert not _prune(_score(21.5), None).passed
    # Within the pruning tolerance, but the pruned model is a real regression vs the shipped champion.
    worse = _prune(_score(20.9, (20.5, 21.3)), _champion(15.0))
    assert not worse.passed and "the pruned model's FID 20.900" in " ".join(worse.reasons)
