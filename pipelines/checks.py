"""Blocking asset checks: a failed gate stops every downstream asset of the run.

Each check reports the decision its asset took and stored, and records the stored value's identity
(``value_identity``), so the export can find in Dagster's event log that exactly this value passed.
A failed gate tags its run ``gan/outcome=gate-refused``. Each always returns a result (never raises): Dagster blocks downstream assets only on a failed
ERROR-severity result, and a crashing check emits none.
"""

import dagster as dg

from pipelines.assets.model import generator_evaluation, pruned_generator
from pipelines.provenance import tag_refusal
from pipelines.types import Evaluation, GateDecision, PrunedGenerator, Record


def _result(
    context: dg.AssetCheckExecutionContext, decision: GateDecision, value: Record, extra: dict
) -> dg.AssetCheckResult:
    if not decision.passed:
        tag_refusal(context.instance, context.run.run_id, decision.gate)
    return dg.AssetCheckResult(
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "decision": "pass" if decision.passed else "FAIL",
            "reasons": "; ".join(decision.reasons),
            "judged_sha256": decision.judged_sha256,
            "settings_digest": decision.settings_digest,
            "value_identity": value.identity(),
            "champion_fid": dg.MetadataValue.float(decision.champion_fid)
            if decision.champion_fid is not None
            else "none",
            "champion_version": decision.champion_version or "none",
            **extra,
        },
    )


@dg.asset_check(
    asset=generator_evaluation,
    blocking=True,
    description="FID under the absolute bound and not a real regression vs the champion re-scored in the same run.",
)
def fid_gate(context: dg.AssetCheckExecutionContext, generator_evaluation: Evaluation) -> dg.AssetCheckResult:
    score = generator_evaluation.score
    return _result(
        context,
        generator_evaluation.gate,
        generator_evaluation,
        {
            "fid": dg.MetadataValue.float(score["fid"]),
            "fid_max": dg.MetadataValue.float(generator_evaluation.gate.limit),
            "backbone": score.get("label", ""),
        },
    )


@dg.asset_check(
    asset=pruned_generator,
    blocking=True,
    description="Pruning did not make FID worse beyond the tolerance, and the pruned model is not a real "
    "regression vs the shipped champion re-scored in the same run.",
)
def prune_gate(
    context: dg.AssetCheckExecutionContext, pruned_generator: PrunedGenerator
) -> dg.AssetCheckResult:
    return _result(
        context,
        pruned_generator.gate,
        pruned_generator,
        {
            "fid_before": dg.MetadataValue.float(pruned_generator.fid_before),
            "fid_after": dg.MetadataValue.float(pruned_generator.fid_after),
            "units_removed": pruned_generator.units_removed,
        },
    )
