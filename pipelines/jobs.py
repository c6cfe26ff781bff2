"""The retraining job, its weekly schedule, and a sensor that launches it when new raw data lands."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dagster as dg

from pipelines.resources import Workspace

# Where `retrain` runs its steps. Unset: Dagster's default (every step a subprocess of the run worker).
# "in_process": every step in the run worker itself (`make run` on one machine: no interpreter per step).
# "k8s": one Kubernetes pod per step (dagster-k8s), so only trained_generator's pod asks for a GPU through
# its `dagster-k8s/config` op tag (deploy/README.md) instead of the whole run holding one.
EXECUTOR_ENV = "GAN_EXECUTOR"


def executor_from_env(value: str | None = None) -> dg.ExecutorDefinition | None:
    choice = (value if value is not None else os.environ.get(EXECUTOR_ENV, "")).strip().lower()
    if choice in ("", "default", "multiprocess"):
        return None  # the code location's default executor
    if choice == "in_process":  # `make run`: one machine, one step at a time anyway; no ~9 s start per step
        return dg.in_process_executor
    if choice == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError as exc:
            raise ImportError(f"{EXECUTOR_ENV}=k8s needs the dagster-k8s package in the code image") from exc
        return k8s_job_executor
    raise ValueError(f"{EXECUTOR_ENV}={choice!r}: expected unset, 'multiprocess', 'in_process' or 'k8s'")


retrain_job = dg.define_asset_job(
    "retrain",
    # Sources included: every run observes params.yaml, so the data versions Dagster compares are current.
    selection=dg.AssetSelection.all(include_sources=True),
    description="Materializes the whole chain: ingest -> DVC preprocess -> train -> evaluate (fid_gate) -> "
    "prune (prune_gate) -> ONNX export to the object store.",
    tags={"team": "ml-platform"},
)

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00 UTC: fresh weights before the working week starts
    execution_timezone="UTC",
    tags={"trigger": "weekly_schedule"},
    description="Retrains the whole chain every Monday at 03:00 UTC.",
    default_status=dg.DefaultScheduleStatus.STOPPED,  # turned on per deployment, never by a code push
)


def _listing(source: str, base: Path) -> list[str]:
    """One line per file of the source: name (and size, mtime where the backend has them cheaply)."""
    if source == "digits" or source.startswith("torchvision:"):
        return [source]  # a packaged data set never changes under us
    if source.startswith("s3://"):
        from ganlib.store import open_store

        return sorted(
            open_store(source).list("")
        )  # keys relative to the prefix; endpoint from AWS_ENDPOINT_URL*
    root = Path(source) if Path(source).is_absolute() else base / source
    if not root.is_dir():
        return []
    entries = []
    for p in root.rglob("*"):
        if p.is_file() and not p.name.startswith("."):  # ingest skips dotfiles too
            st = p.stat()
            entries.append(f"{p.relative_to(root).as_posix()}:{st.st_size}:{st.st_mtime_ns}")
    return sorted(entries)


def source_listing_digest(source: str, base: Path | None = None) -> tuple[str, int]:
    """A digest of the source's file listing and its file count (relative folders resolve against ``base``)."""
    entries = _listing(source, base or Path.cwd())
    return hashlib.sha256("\n".join(entries).encode()).hexdigest(), len(entries)


def _read_cursor(cursor: str | None) -> dict | None:
    if cursor is None:
        return None
    try:
        state = json.loads(cursor)
    except json.JSONDecodeError:
        state = None
    return state if isinstance(state, dict) else {"digest": cursor, "count": None}  # an older bare digest


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Launches `retrain` when the raw source (params.yaml: ingest.source) has new or changed files "
    "and its listing held still for one tick (an upload in progress is not trained on). The cursor holds a "
    "digest of the listing; the first tick only records it.",
)
def new_raw_data_sensor(context: dg.SensorEvaluationContext, workspace: Workspace):
    source = workspace.params().get("ingest", {}).get("source", "digits")
    digest, count = source_listing_digest(source, workspace.path)
    seen = _read_cursor(context.cursor)
    if seen is None:
        # First look: remember what is there; retraining on data the last run already saw would waste a GPU.
        context.update_cursor(json.dumps({"digest": digest, "count": count, "source": source}))
        return dg.SkipReason(f"recorded {count} files under {source}; waiting for new ones")
    if seen.get("digest") == digest:
        if seen.get("pending"):  # a change that was undone before it settled
            context.update_cursor(json.dumps({**seen, "pending": None}))
        return dg.SkipReason(f"no new files under {source} ({count} files)")
    before = seen.get("count")
    if seen.get("pending") != digest:
        # Changed since the last tick: files may still be arriving. Launch once the listing holds still.
        context.update_cursor(json.dumps({**seen, "pending": digest}))
        return dg.SkipReason(f"{source} changed ({before} -> {count} files); launching once it holds still")
    context.update_cursor(json.dumps({"digest": digest, "count": count, "source": source}))
    context.log.info(f"raw source {source} changed and settled: {before} -> {count} files")
    tags = {"trigger": "new_raw_data", "files": str(count)}
    if before is not None:
        tags["files_before"] = str(before)
    # run_key: a tick retried after a crash (cursor not yet saved) cannot launch the same listing twice.
    return dg.RunRequest(run_key=digest, tags=tags)
