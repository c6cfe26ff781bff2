"""The code location: ``dagster dev -m pipelines.definitions`` (or ``[tool.dagster]`` in pyproject.toml)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg

from pipelines.assets.data import processed_dataset, raw_images
from pipelines.assets.export import onnx_generator
from pipelines.assets.model import fid_reference, generator_evaluation, pruned_generator, trained_generator
from pipelines.assets.params import ingest_params, preprocess_params
from pipelines.checks import fid_gate, prune_gate
from pipelines.io_manager import JsonRecordIOManager
from pipelines.jobs import executor_from_env, new_raw_data_sensor, retrain_job, weekly_retrain
from pipelines.multinode import KubernetesNodeLauncher
from pipelines.resources import ComputeResource, GanConfigResource, ObjectStoreResource, Workspace
from pipelines.stale_runs import free_dead_runs, launching_without_daemon

SOURCES = [ingest_params, preprocess_params]
_CHAIN = [
    raw_images,
    processed_dataset,
    fid_reference,
    trained_generator,
    generator_evaluation,
    pruned_generator,
    onnx_generator,
]
# Declarative alternative to new_raw_data_sensor: each asset materializes once its upstream has new data
# (an observed params or source-folder change), through the gates. Off until its sensor is turned on.
ASSETS = [a.with_attributes(automation_condition=dg.AutomationCondition.eager()) for a in _CHAIN]
CHECKS = [fid_gate, prune_gate]
eager_automation = dg.AutomationConditionSensorDefinition(
    "eager_on_new_data",
    target=dg.AssetSelection.all(include_sources=True),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs the chain forward whenever params.yaml or the source folder changes (declarative "
    "alternative to new_raw_data_sensor; turn on one of the two).",
)


def build_resources(
    workspace_root: str | Path | None = None, store_uri: str | None = None, **overrides
) -> dict:
    """Resources for a workspace; asset values (small JSON records, pipelines/types.py) live in its outputs/."""
    ws = Workspace(root=str(workspace_root)) if workspace_root else Workspace()
    resources = {
        "workspace": ws,
        "gan_config": GanConfigResource(),
        "compute": ComputeResource(),
        # Used only when compute.nodes > 1: the training pods as a Kubernetes Indexed Job (pipelines/multinode.py).
        "node_launcher": KubernetesNodeLauncher(),
        "object_store": ObjectStoreResource(uri=store_uri)
        if store_uri
        else ObjectStoreResource(
            uri=os.environ.get("GAN_STORE_URI", str(ws.path / "outputs" / "object_store"))
        ),
        "io_manager": JsonRecordIOManager(base_dir=str(ws.path / "outputs" / "dagster_io")),
    }
    resources.update(overrides)
    return resources


# Steps run in subprocesses (isolation, like production), one at a time by default: two torch steps on the
# same CPUs oversubscribe the cores and both crawl. Raise it where steps go to separate machines or GPUs.
EXECUTOR = dg.multiprocess_executor.configured(
    {"max_concurrent": int(os.environ.get("GAN_MAX_CONCURRENT_STEPS", "1"))},
    name="multiprocess_one_at_a_time",
)


def build_defs(
    workspace_root: str | Path | None = None, store_uri: str | None = None, **overrides
) -> dg.Definitions:
    return dg.Definitions(
        executor=executor_from_env() or EXECUTOR,
        assets=[*SOURCES, *ASSETS],
        asset_checks=CHECKS,
        jobs=[retrain_job],
        schedules=[weekly_retrain],
        sensors=[new_raw_data_sensor, eager_automation],
        resources=build_resources(workspace_root, store_uri, **overrides),
    )


defs = build_defs()


def _free_dead_runs_before_a_cli_launch() -> None:
    """`dagster asset materialize` / `dagster job execute` run without the daemon: free the pool slots of
    runs killed earlier (their processes are gone), or this launch would wait on them forever."""
    import multiprocessing

    if multiprocessing.parent_process() is not None or not launching_without_daemon(sys.argv):
        return  # a step subprocess (it inherits argv) or any other loader: the webserver, the daemon
    with dg.DagsterInstance.get() as instance:
        free_dead_runs(instance, log=lambda m: print(f"pipelines: {m}", file=sys.stderr))


_free_dead_runs_before_a_cli_launch()
