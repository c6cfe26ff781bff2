"""The `dagster` CLI materializes one asset against a temp DAGSTER_HOME, and a second asset alone loads its
upstream from storage instead of recomputing it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.resources import REPO_ROOT

pytestmark = pytest.mark.e2e


def _dagster(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(exe), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_cli_materializes_single_assets(workspace: Path, tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "GAN_WORKSPACE": str(workspace),
        "GAN_STORE_URI": str(tmp_path / "store"),
    }

    first = _dagster(["asset", "materialize", "-m", "pipelines.definitions", "--select", "raw_images"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (workspace / "data" / "raw" / "digits" / "manifest.parquet").is_file()
    assert (workspace / "data" / "raw" / "digits.dvc").is_file()  # tracked with `dvc add`
    stored = workspace / "outputs" / "dagster_io" / "raw_images.json"  # the asset value (a JSON record)
    assert stored.is_file()
    stored_mtime = stored.stat().st_mtime

    second = _dagster(
        ["asset", "materialize", "-m", "pipelines.definitions", "--select", "processed_dataset"], env
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "RUN_SUCCESS" in second.stderr + second.stdout
    assert (workspace / "dvc.lock").is_file()
    # Only the selected asset ran: raw_images was loaded from storage, not re-ingested.
    log = second.stderr + second.stdout
    assert " - processed_dataset - STEP_START" in log
    assert " - raw_images - STEP_START" not in log
    assert stored.stat().st_mtime == stored_mtime
    # SQLite storage lives in the temp DAGSTER_HOME, not in the checkout.
    assert (home / "history").exists() or (home / "storage").exists()
