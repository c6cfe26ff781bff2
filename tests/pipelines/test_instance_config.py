"""The repository's dagster.yaml, read back through a real DagsterInstance in a temp DAGSTER_HOME."""

from __future__ import annotations

import shutil
import uuid

import dagster as dg
import pytest
from dagster._utils.concurrency import ConcurrencySlotStatus

from pipelines.definitions import ASSETS
from pipelines.resources import REPO_ROOT


@pytest.fixture
def instance(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as inst:
        yield inst


def test_pools_default_to_one_slot_per_op(instance):
    pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1
    assert pools.pool_granularity.value == "op"
    for pool in ("gpu", "dvc"):
        info = instance.event_log_storage.get_concurrency_info(pool)
        assert (info.limit, info.using_default_limit) == (1, True)


def test_training_is_in_the_gpu_pool_and_dvc_steps_in_the_dvc_pool():
    pools = {a.key.to_user_string(): a.op.pool for a in ASSETS}
    assert pools["trained_generator"] == "gpu"
    assert pools["raw_images"] == pools["processed_dataset"] == "dvc"
    # Everything that runs a network on the accelerator takes turns on it; ingestion and export do not.
    assert {k for k, v in pools.items() if v == "gpu"} == {
        "fid_reference",
        "trained_generator",
        "generator_evaluation",
        "pruned_generator",
    }


def test_a_second_training_step_waits_for_the_gpu_slot(instance):
    """What the run workers do before a pooled step: claim a slot. Only one claim gets it."""
    storage = instance.event_log_storage
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    storage.initialize_concurrency_limit_to_default("gpu")
    assert (
        storage.claim_concurrency_slot("gpu", first, "trained_generator").slot_status
        == ConcurrencySlotStatus.CLAIMED
    )
    assert (
        storage.claim_concurrency_slot("gpu", second, "trained_generator").slot_status
        == ConcurrencySlotStatus.BLOCKED
    )
    storage.free_concurrency_slot_for_step(first, "trained_generator")
    assert (
        storage.claim_concurrency_slot("gpu", second, "trained_generator").slot_status
        == ConcurrencySlotStatus.CLAIMED
    )


def test_runs_are_queued_and_retried_only_for_infrastructure_failures(instance):
    queue = instance.get_concurrency_config().run_queue_config
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert queue.max_concurrent_runs == 4
    assert instance.run_retries_enabled and instance.run_retries_max_retries == 1
    assert instance.run_retries_retry_on_asset_or_op_failure is False
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300
