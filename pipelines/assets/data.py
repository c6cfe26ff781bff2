"""Data assets: ingest a source into data/raw/<name> (DVC-tracked), then DVC's preprocess stage."""

from pathlib import Path

import dagster as dg

from ganlib.data.raw_shards import IMAGES_PER_SHARD
from ganlib.data.shards import load_split, read_meta
from ganlib.data.sources import DEFAULT_MAX_PIXELS, IngestError, ingest_source, raw_image_bytes
from ganlib.viz import save_grid
from pipelines import dvc
from pipelines.assets.params import ingest_params, preprocess_params
from pipelines.code_versions import DATA, code_version
from pipelines.ingest_record import record_ingest, unchanged_ingest
from pipelines.metadata import image, table
from pipelines.resources import GanConfigResource, Workspace
from pipelines.types import ProcessedDataset, RawImages

OWNERS = ["team:ml-platform"]


@dg.asset(
    group_name="data",
    code_version=code_version(*DATA),
    kinds={"dvc", "pandas"},
    owners=OWNERS,
    pool="dvc",
    deps=[ingest_params],
    description="Pulls the configured source (params.yaml: ingest) into `data/raw/NAME/`, validating every "
    "file; rejects are listed with their reason. The accepted files are packed into checksummed tar shards, "
    "and the folder is tracked with `dvc add` (a handful of shards, not one entry per image).",
)
def raw_images(
    context: dg.AssetExecutionContext,
    workspace: Workspace,
    gan_config: GanConfigResource,
) -> dg.Output[RawImages]:
    # The first step checks the whole GAN config (and it against params.yaml): a bad value fails before any work.
    gan_config.load(workspace)
    params = workspace.params().get("ingest", {})
    name, source = params.get("name", "digits"), str(params.get("source", "digits"))
    raw_dir = workspace.raw_dir(name)
    resolved = workspace.resolve_source(source)
    record_file = workspace.outputs("raw_images") / f"{name}.ingest.json"
    unchanged = unchanged_ingest(
        record_file, resolved, params, raw_dir, workspace.path / f"data/raw/{name}.dvc"
    )
    if unchanged is not None:
        context.log.info(f"{source} and data/raw/{name} are as last ingested: skipping ingestion and dvc add")
        return _raw_output(name, source, raw_dir, unchanged, workspace)
    try:
        report = ingest_source(
            resolved,
            raw_dir,
            max_reject_fraction=float(params.get("max_reject_fraction", 0.05)),
            allow_download=bool(params.get("allow_download", False)),
            progress=True,
            download_root=workspace.path / params.get("download_root", "data/torchvision"),
            endpoint_url=params.get("endpoint_url") or None,
            max_pixels=params.get("max_pixels", DEFAULT_MAX_PIXELS),
            images_per_shard=params.get("images_per_shard", IMAGES_PER_SHARD),
        )
    except IngestError as exc:
        raise dg.Failure(str(exc)) from None
    raw_hash = dvc.add(workspace.path, f"data/raw/{name}", log=context.log.info)
    record = record_ingest(record_file, resolved, params, raw_dir, raw_hash, report)
    return _raw_output(name, source, raw_dir, record, workspace)


def _raw_output(name: str, source: str, raw_dir: Path, record: dict, workspace: Workspace):
    preview = save_grid(_preview(raw_dir), workspace.outputs("raw_images") / f"{name}-preview.png", nrow=16)
    raw_hash, classes = record["dvc_hash"], record["classes"]
    total = record["accepted"] + record["rejected"]
    return dg.Output(
        RawImages(name=name, raw_dir=str(raw_dir), dvc_hash=raw_hash, count=record["accepted"]),
        data_version=dg.DataVersion(raw_hash),
        metadata={
            "source": source,
            "count": record["accepted"],
            "rejected": record["rejected"],
            "reject_fraction": round(record["rejected"] / total if total else 0.0, 4),
            "classes": dg.MetadataValue.json(classes),
            # smallest class / largest class: 1.0 is balanced; a small value warns before training does
            "class_balance": round(min(classes.values()) / max(classes.values()), 4),
            "rejects": table(record["rejects"], ["file", "reason"]) if record["rejects"] else "none",
            # hidden entries and empty class folders: not data, but never dropped without a word
            "skipped": table(record["skipped"], ["file", "reason"]) if record.get("skipped") else "none",
            "dvc_hash": raw_hash,
            "preview": image(preview, "raw preview", workspace.outputs()),
        },
    )


def _preview(raw_dir: Path, n: int = 64):
    import io

    import numpy as np
    import pyarrow.parquet as pq
    from PIL import Image

    count = pq.read_metadata(raw_dir / "manifest.parquet").num_rows
    rows = list(range(0, count, max(count // n, 1)))[:n]
    pics = []
    for _, data in raw_image_bytes(raw_dir, rows, verify=False):  # a preview: preprocess checks shards
        with Image.open(io.BytesIO(data)) as im:
            pics.append(np.asarray(im.convert("L").resize((32, 32))))
    return np.stack(pics)[:, None]


@dg.asset(
    group_name="data",
    code_version=code_version(*DATA, "dvc.yaml"),
    kinds={"dvc", "numpy"},
    owners=OWNERS,
    pool="dvc",
    deps=[raw_images, preprocess_params],
    description="Runs `dvc repro preprocess` (dvc.yaml): resize, split train/val, pack uint8 shards. "
    "Unchanged raw data and params: DVC skips the stage and the data version stays the same.",
)
def processed_dataset(
    context: dg.AssetExecutionContext,
    workspace: Workspace,
    gan_config: GanConfigResource,
) -> dg.Output[ProcessedDataset]:
    gan_config.load(workspace)  # checked before DVC runs (this asset may be materialized alone)
    try:
        result = dvc.repro(workspace.path, "preprocess", log=context.log.info)
    except dvc.DvcError as exc:
        if exc.log:
            context.log.error(exc.log)
        raise dg.Failure(str(exc)) from None
    context.log.info(result.log)
    if result.up_to_date:
        context.log.info("processed_dataset is up to date: DVC skipped the preprocess stage")
    elif not result.ran:
        context.log.info("DVC restored the preprocess outputs for these deps and params from its run-cache")
    remote = dvc.default_remote(workspace.path)
    if remote:
        try:
            dvc.push(workspace.path, log=context.log.info)
        except dvc.DvcError as exc:
            raise dg.Failure(f"dvc push to remote {remote!r} failed: {exc}") from None
    meta = read_meta(workspace.processed_dir)
    val = load_split(workspace.processed_dir, "val")
    preview = save_grid(val.images[:64], workspace.outputs("processed_dataset") / "val-preview.png", nrow=16)
    return dg.Output(
        ProcessedDataset(
            path=str(workspace.processed_dir),
            data_hash=result.output_hash,
            counts=meta["counts"],
            resolution=meta["resolution"],
            channels=meta["channels"],
            class_names=[str(c) for c in meta["class_names"]],
        ),
        data_version=dg.DataVersion(result.output_hash),
        metadata={
            "dvc_hash": result.output_hash,
            "up_to_date": result.up_to_date,
            "status": _status(result),
            "train": meta["counts"]["train"],
            "val": meta["counts"]["val"],
            "resolution": meta["resolution"],
            "classes": len(meta["class_names"]),
            "params": dg.MetadataValue.json(meta["params"]),
            "pushed_to_remote": bool(remote),
            "dvc_remote": remote or "none configured",
            "val_preview": image(preview, "val preview", workspace.outputs()),
        },
    )


def _status(result: dvc.ReproResult) -> str:
    if result.up_to_date:
        return "up to date (DVC skipped the stage)"
    return "preprocessed" if result.ran else "restored from DVC's run-cache"
