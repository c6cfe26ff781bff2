"""Checks that bind a stage to the artifacts it judges: each refusal names the identity that differs and
the asset to re-materialize, in one line, and stops the step before it writes or uploads anything."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from ganlib.store import sha256_file
from pipelines.types import Record

OUTCOME_TAG = "gan/outcome"  # on the run: "gate-refused" marks a deliberate no, not a crashed worker
REFUSED_BY_TAG = "gan/refused-by"


def tag_refusal(instance: dg.DagsterInstance, run_id: str, by: str) -> None:
    """Mark the run, so the Runs page tells a gate's refusal from an infrastructure failure at a glance."""
    instance.add_run_tags(run_id, {OUTCOME_TAG: "gate-refused", REFUSED_BY_TAG: by})


@contextlib.contextmanager
def refusals_tagged(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Tag the run when the wrapped stage refuses its inputs (``ChainBroken``), then let the refusal fail it."""
    try:
        yield
    except ChainBroken:
        tag_refusal(context.instance, context.run.run_id, context.asset_key.to_user_string())
        raise


class ChainBroken(dg.Failure):
    """A stage's inputs are not the artifacts its upstream judged; never retried (re-running can't help)."""

    def __init__(self, stage: str, problem: str) -> None:
        super().__init__(f"{stage} refused: {problem}", allow_retries=False)


def require_equal(stage: str, what: str, found: str, expected: str, remedy: str) -> None:
    if found != expected:
        raise ChainBroken(stage, f"{what}: {found[:16]} != {expected[:16]}. {remedy}")


def require_file(stage: str, path: str | Path, sha256: str, asset: str) -> None:
    """The file on disk is still exactly what the upstream record names (not replaced or edited since)."""
    if not Path(path).is_file():
        raise ChainBroken(stage, f"{path} (recorded by {asset}) is missing: re-materialize {asset}")
    found = sha256_file(path)[0]
    require_equal(
        stage,
        f"{path} changed since {asset} recorded it",
        found,
        sha256,
        f"Re-materialize {asset}.",
    )


def require_passed_check(
    stage: str, instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, record: Record, history: int = 50
) -> None:
    """Dagster's event log holds a passing evaluation of ``check_key`` for exactly this stored value.

    The gates record the value's identity (sha256 of its canonical JSON) in their metadata; a value edited
    after its check ran, or one materialized without its check, has no such record.
    """
    identity = record.identity()
    executions = instance.event_log_storage.get_asset_check_execution_history(
        check_key,
        limit=history,
        status={AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED},
    )
    for execution in executions:
        evaluation = execution.evaluation
        recorded = evaluation.metadata.get("value_identity") if evaluation else None
        if recorded is not None and recorded.value == identity:
            if not evaluation.passed:
                reasons = evaluation.metadata.get("reasons")
                raise ChainBroken(
                    stage, f"{check_key.name} did not pass ({reasons.value if reasons else 'no reasons'})"
                )
            return
    asset = check_key.asset_key.to_user_string()
    raise ChainBroken(
        stage,
        f"no {check_key.name} result in this Dagster instance for the stored {asset} value "
        f"(identity {identity[:16]}): it was edited after its check ran or materialized without its "
        f"check. Re-materialize {asset} with its checks.",
    )
