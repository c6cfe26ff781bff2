"""A no-change re-run of raw_images skips ingestion and `dvc add` (same data version); any change to the
source or to the raw copy ingests again."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest
from data_helpers import data_workspace, image_folder, noise, png_bytes

from pipelines.assets.data import raw_images
from pipelines.definitions import build_resources

pytestmark = pytest.mark.slow


def _run(ws: Path, instance: dg.DagsterInstance) -> tuple[str, bool]:
    result = dg.materialize(
        [raw_images], resources=build_resources(ws, str(ws.parent / "store")), instance=instance
    )
    (mat,) = result.asset_materializations_for_node("raw_images")
    logs = " ".join(e.message or "" for e in instance.all_logs(result.run_id))
    return mat.metadata["dvc_hash"].value, "skipping ingestion" in logs


def test_unchanged_source_skips_and_changes_reingest(tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", per_class=4)
    ws = data_workspace(tmp_path / "ws", src, resolution=8)
    instance = dg.DagsterInstance.ephemeral()
    first, skipped = _run(ws, instance)
    assert not skipped
    assert _run(ws, instance) == (first, True)

    (src / "a" / "new.png").write_bytes(png_bytes(noise(777)))  # a new source file
    added, skipped = _run(ws, instance)
    assert not skipped and added != first

    raw_shard = ws / "data" / "raw" / "toy" / "shards" / "raw-00000.tar"  # touched behind DVC's back
    os.utime(raw_shard, ns=(0, 0))
    again, skipped = _run(ws, instance)
    assert not skipped and again == added  # same content: re-ingested, and the same DVC hash
