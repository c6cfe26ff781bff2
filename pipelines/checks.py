"""Blocking asset checks: a failed gate stops every downstream asset of the run.

Each check always returns a result (never raises): Dagster only blocks downstream assets on a failed
ERROR-severity result, and a crashing check emits none.
"""

import dagster as dg

from pipelines.assets.model import generator_evaluation, pruned_generator


def _result(decision: dict | None, extra: dict) -> dg.AssetCheckResult:
    if not decision:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"reasons": "no gate decision was recorded"},
        )
    return dg.AssetCheckResult(
        passed=bool(decision["passed"]),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "decision": "pass" if decision["passed"] else "FAIL",
            "reasons": "; ".join(decision["reasons"]),
            **extra,
        },
    )


@dg.asset_check(
    asset=generator_evaluation,
    blocking=True,
    description="FID under the absolute bound and not a real regression vs the champion.",
)
def fid_gate(generator_evaluation: dict) -> dg.AssetCheckResult:
    d = generator_evaluation.get("gate") or {}
    return _result(
        d,
        {
            "fid": d.get("fid"),
            "fid_max": d.get("fid_max"),
            "champion_fid": d.get("champion_fid") if d.get("champion_fid") is not None else "none",
            "backbone": d.get("label", ""),
        },
    )


@dg.asset_check(
    asset=pruned_generator, blocking=True, description="Pruning did not make FID worse beyond the tolerance."
)
def prune_gate(pruned_generator: dict) -> dg.AssetCheckResult:
    d = pruned_generator.get("gate") or {}
    return _result(
        d,
        {
            "fid_before": d.get("fid_before"),
            "fid_after": d.get("fid_after"),
            "units_removed": pruned_generator.get("units_removed", 0),
        },
    )
