"""A config made for 64 px on a workspace whose params.yaml preprocesses to 16 px: the first asset refuses in
one line that says what to set, before anything is ingested."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from workspace_helpers import step_failure, tiny_config

from pipelines.assets.data import raw_images
from pipelines.definitions import build_resources


def test_mismatch_fails_the_first_asset_before_ingestion(workspace: Path, tmp_path: Path) -> None:
    resources = build_resources(workspace, str(tmp_path / "store"), gan_config=tiny_config("sngan-64"))
    result = dg.materialize([raw_images], resources=resources, raise_on_error=False)
    assert not result.success
    message = step_failure(result)
    assert "model.resolution is 64 but params.yaml preprocess.resolution" in message
    assert "is 16px: set `preprocess.resolution: 64` in params.yaml" in message
    assert not (workspace / "data" / "raw" / "digits").exists()
