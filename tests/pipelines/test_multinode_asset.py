"""compute.nodes = 2: the trained_generator asset launches a two-node torchrun job through its node launcher
and reads the result back from the shared run folder. The launcher here is the loopback one: both nodes are
torchrun processes on this machine running the Kubernetes pods' exact command (c10d rendezvous on
127.0.0.1, gloo); only the Kubernetes API calls are not made (tests/pipelines/test_k8s_training.py checks what
they would submit)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import torch
import yaml
from model_helpers import parameters_digest
from workspace_helpers import step_failure, tiny_config

from ganlib.models import load_generator
from pipelines.assets.data import processed_dataset, raw_images
from pipelines.assets.model import trained_generator
from pipelines.definitions import build_resources
from pipelines.multinode import KubernetesNodeLauncher, LoopbackNodeLauncher, expand_k8s_vars, free_port
from pipelines.resources import ComputeResource

pytestmark = pytest.mark.slow

TINY_TRAIN = {"steps": 3, "batch_size": 16, "checkpoint_every": 2, "log_every": 1}


def _materialize(workspace: Path, tmp_path: Path, batch_size: int = 16):
    resources = build_resources(
        workspace,
        str(tmp_path / "store"),
        gan_config=tiny_config(train={**TINY_TRAIN, "batch_size": batch_size}),
        compute=ComputeResource(device="cpu", nodes=2, processes=1),
        node_launcher=LoopbackNodeLauncher(timeout_s=300),
    )
    return dg.materialize(
        [raw_images, processed_dataset, trained_generator], resources=resources, raise_on_error=False
    )


def test_trained_generator_trains_on_two_nodes_with_identical_weights(
    workspace: Path, tmp_path: Path
) -> None:
    result = _materialize(workspace, tmp_path)
    assert result.success, step_failure(result)
    (mat,) = result.asset_materializations_for_node("trained_generator")
    assert mat.metadata["device"].value == "cpu x2 (2 nodes, torchrun)"
    record = result.output_for_node("trained_generator")
    state = torch.load(record.checkpoint, weights_only=True)
    assert state["step"] == 3 == record.steps
    assert len(state["rng_per_rank"]) == 2  # written by global rank 0 of a 2-process job

    # Each node ran one rank and printed its generator's digest: both equal the test's own digest of the
    # checkpoint the asset read back (the two nodes held the same weights at the end).
    run_dir = Path(record.run_dir)
    digests = {}
    for node in (0, 1):
        for line in (run_dir / f"node-{node}.log").read_text().splitlines():
            if line.startswith('{"rank"'):
                entry = json.loads(line)
                digests[entry["rank"]] = entry["generator_sha256"]
    expected = parameters_digest(load_generator(record.checkpoint, ema=False))
    assert digests == {0: expected, 1: expected}


def test_a_failing_node_fails_the_asset_with_its_log(workspace: Path, tmp_path: Path) -> None:
    """A global batch the two ranks cannot split: the nodes exit with an error, and the asset fails in one
    message naming the node and ending with that node's own error."""
    result = _materialize(workspace, tmp_path, batch_size=15)
    assert not result.success
    message = step_failure(result)
    assert "Failure: node 0 of 2 failed (exit 1; logs in " in message
    assert "train.batch_size=15 must be divisible by the 2 processes" in message


def test_kubernetes_variable_expansion() -> None:
    env = {"JOB_COMPLETION_INDEX": "1"}
    assert expand_k8s_vars("--node_rank=$(JOB_COMPLETION_INDEX)", env) == "--node_rank=1"
    assert (
        expand_k8s_vars("$(UNSET) $$(JOB_COMPLETION_INDEX) $$", env) == "$(UNSET) $(JOB_COMPLETION_INDEX) $"
    )


def test_kubernetes_launcher_runs_up_to_the_api_call(workspace: Path, tmp_path: Path) -> None:
    """The deployment's launcher on the same asset path, pointed (by a kubeconfig) at a closed loopback port
    where an API server would listen: it writes the config, translates the run folder to the pods' volume
    path, and fails in one line at its first API call, naming the Service, namespace and endpoint."""
    port = free_port()  # bound, then closed: nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "gan-ns"}}],
                "current-context": "x",
            }
        )
    )
    launcher = KubernetesNodeLauncher(
        image="registry.example.com/gan:abc", load_incluster_config=False, kubeconfig_file=str(kubeconfig)
    )
    resources = build_resources(
        workspace,
        str(tmp_path / "store"),
        gan_config=tiny_config(train=TINY_TRAIN),
        compute=ComputeResource(device="cpu", nodes=2, processes=1),
        node_launcher=launcher,
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [raw_images, processed_dataset, trained_generator],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    name = f"gan-train-{result.run_id[:8]}"
    assert f"could not create Service {name} in namespace gan-ns at http://127.0.0.1:{port}: " in (
        step_failure(result)
    )
    launched = [
        e.message
        for e in instance.all_logs(result.run_id)
        if e.message and e.message.startswith("launching 2 nodes x 1 processes: ")
    ]
    (command,) = launched
    run_dir = next((workspace / "outputs" / "train").iterdir())
    assert (run_dir / "torchrun-config.yaml").is_file()
    assert f"--config /workspace/outputs/train/{run_dir.name}/torchrun-config.yaml" in command
    assert "--data /workspace/data/processed" in command
    assert f"--rdzv_endpoint={name}-0.{name}:29400" in command
