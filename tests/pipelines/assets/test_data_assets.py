"""raw_images + processed_dataset materialized in-process: data versions follow DVC, staleness follows them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

# Dagster has no public stale-status API outside its GraphQL layer; this is the resolver the UI uses,
# built the way Dagster's own tests build it.
from dagster._core.definitions.data_version import StaleStatus
from dagster._core.definitions.observe import observe  # in-process observation (no public export)
from dagster._utils.test.data_versions import get_stale_status_resolver
from data_helpers import data_workspace, file_hashes, image_folder, set_params, write_corrupt_files

from pipelines import dvc
from pipelines.assets.data import processed_dataset, raw_images
from pipelines.assets.params import ingest_params, preprocess_params
from pipelines.definitions import build_resources

pytestmark = pytest.mark.slow


@dg.asset(deps=[processed_dataset])
def consumer() -> None:
    """Stands in for training: anything downstream of the processed data."""


ASSETS = [ingest_params, preprocess_params, raw_images, processed_dataset, consumer]
PROCESSED, CONSUMER = dg.AssetKey("processed_dataset"), dg.AssetKey("consumer")


def _materialize(ws: Path, instance: dg.DagsterInstance, assets=ASSETS) -> dg.ExecuteInProcessResult:
    resources = build_resources(ws, str(ws.parent / "store"))
    return dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False)


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict:
    (mat,) = result.asset_materializations_for_node(node)
    return {k: v.value for k, v in mat.metadata.items()}


def test_versions_noop_param_change_staleness_and_failed_ingest(tmp_path: Path) -> None:
    ws = data_workspace(tmp_path / "ws", image_folder(tmp_path / "src", per_class=6), resolution=8)
    instance = dg.DagsterInstance.ephemeral()

    def status(key: dg.AssetKey) -> StaleStatus:
        return get_stale_status_resolver(instance, ASSETS).get_status(key)

    def version(key: dg.AssetKey) -> str:
        return get_stale_status_resolver(instance, ASSETS).get_current_data_version(key).value

    # 1. First run: DVC runs the stage; the data version is the output hash dvc.lock records.
    first = _materialize(ws, instance)
    assert first.success
    meta = _meta(first, "processed_dataset")
    assert meta["status"] == "preprocessed" and meta["up_to_date"] is False
    v1 = version(PROCESSED)
    assert v1 == meta["dvc_hash"] == dvc.stage_output_hash(ws, "preprocess")
    assert status(CONSUMER) == StaleStatus.FRESH

    # 2. Nothing changed: DVC skips, the asset says so, same version, the consumer stays fresh.
    second = _materialize(ws, instance, [ingest_params, preprocess_params, raw_images, processed_dataset])
    assert second.success
    meta = _meta(second, "processed_dataset")
    assert meta["status"] == "up to date (DVC skipped the stage)" and meta["up_to_date"] is True
    assert version(PROCESSED) == v1
    assert status(CONSUMER) == StaleStatus.FRESH

    # 3. A preprocessing param changed. Once observed (every run, the daemon every minute, or the UI),
    # Dagster sees it before anything re-runs: processed_dataset is stale, as `dvc status` would say.
    set_params(ws, preprocess={"resolution": 12})
    assert status(PROCESSED) == StaleStatus.FRESH  # not observed yet
    resources = build_resources(ws, str(ws.parent / "store"))
    assert observe([preprocess_params], resources=resources, instance=instance).success
    assert status(PROCESSED) == StaleStatus.STALE
    assert status(dg.AssetKey("raw_images")) == StaleStatus.FRESH  # the ingest section did not change
    third = _materialize(ws, instance, [ingest_params, preprocess_params, raw_images, processed_dataset])
    assert third.success and _meta(third, "processed_dataset")["status"] == "preprocessed"
    v3 = version(PROCESSED)
    assert v3 != v1 and v3 == dvc.stage_output_hash(ws, "preprocess")
    assert status(PROCESSED) == StaleStatus.FRESH
    assert status(CONSUMER) == StaleStatus.STALE

    # 4. A source with too many bad files: the asset fails with the reasons, the raw data is untouched.
    raw_before = file_hashes(ws / "data" / "raw" / "toy")
    dvc_file = (ws / "data" / "raw" / "toy.dvc").read_text()
    bad = tmp_path / "bad"
    image_folder(bad, per_class=1)
    write_corrupt_files(bad / "junk")
    set_params(ws, ingest={"source": str(bad)})
    failed = _materialize(ws, instance, [raw_images])
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "4 of 6 files" in message and "junk/cmyk.jpg" in message
    assert file_hashes(ws / "data" / "raw" / "toy") == raw_before
    assert (ws / "data" / "raw" / "toy.dvc").read_text() == dvc_file
