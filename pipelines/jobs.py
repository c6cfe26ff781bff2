"""The retraining job, its weekly schedule, and a sensor that launches it when new raw data lands."""


import hashlib

import dagster as dg

from pipelines.resources import Workspace

retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.all(),
    description="Materializes the whole chain: ingest -> DVC preprocess -> train -> evaluate (fid_gate) -> "
    "prune (prune_gate) -> ONNX export to the object store.",
    tags={"team": "ml-platform"},
)

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=retrain_job,
    cron_schedule="0 3 * * 1",  # Mondays 03:00
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


def source_listing_digest(source: str) -> tuple[str, int]:
    """A digest of the source's file listing (names, sizes, mtimes) and its file count."""
    from pathlib import Path

    if source.startswith("s3://"):
        from ganlib.store import open_store

        keys = sorted(open_store(source).list(""))
        entries = [str(k) for k in keys]
    elif source == "digits" or source.startswith("torchvision:"):
        entries = [source]  # a packaged data set never changes under us
    else:
        root = Path(source)
        entries = sorted(
            f"{p.relative_to(root)}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in root.rglob("*") if p.is_file()
        ) if root.is_dir() else []
    return hashlib.sha256("\n".join(entries).encode()).hexdigest(), len(entries)


@dg.sensor(job=retrain_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Launches `retrain` when the raw source (params.yaml: ingest.source) has new or changed files.")
def new_raw_data_sensor(context: dg.SensorEvaluationContext, workspace: Workspace):
    source = workspace.params().get("ingest", {}).get("source", "digits")
    digest, count = source_listing_digest(source)
    if context.cursor is None:
        context.update_cursor(digest)  # first look: remember the listing, don't retrain on what was there
        return dg.SkipReason(f"recorded {count} files under {source}")
    if digest == context.cursor:
        return dg.SkipReason(f"no new files under {source}")
    context.update_cursor(digest)
    return dg.RunRequest(run_key=digest, tags={"trigger": "new_raw_data", "files": str(count)})
