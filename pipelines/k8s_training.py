"""The Kubernetes objects of a multi-node training run: an Indexed Job whose N pods each run torchrun (node
rank = the pod's completion index) plus a headless Service that gives pod 0 a DNS name, the c10d rendezvous
endpoint. Torch-free. The trained_generator asset submits them through dagster-k8s (``execute_k8s_job_kwargs``,
pipelines/multinode.py); ``render`` gives the same objects as manifests for kubectl (deploy/README.md, "Many
nodes"):

    python -m pipelines.k8s_training --name gan-train-abc --nodes 2 --gpus 8 --image IMAGE:TAG \\
        --config /workspace/outputs/abc/torchrun-config.yaml --out /workspace/outputs/abc | kubectl apply -f -
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from typing import Any

import yaml

from ganlib.torchrun import RDZV_PORT, Rendezvous, torchrun_command

_DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL = "gan-workflow/training-job"  # selects one job's pods for its Service


@dataclass(frozen=True)
class TrainingJob:
    name: str  # Job and Service name; pods are <name>-<index>.<name>
    nodes: int
    gpus_per_node: int
    image: str  # "" where no image is used (every node runs on this machine: pipelines.multinode)
    config: str  # paths on the workspace volume
    out: str
    data: str = "/workspace/data/processed"
    workspace_claim: str = "gan-workspace"  # deploy/helm/workspace-pvc.yaml
    workspace_mount: str = "/workspace"
    cpu: str = "8"
    memory: str = "32Gi"
    port: int = RDZV_PORT
    # Where node 0's c10d store listens: None = pod 0 through the headless Service; an address when the
    # nodes are processes of one machine.
    rendezvous_host: str | None = None
    python: str = "python"  # the image's interpreter

    def __post_init__(self) -> None:
        # Pod hostnames are <name>-<index>, which must stay a DNS label (63 characters).
        if not _DNS_LABEL.fullmatch(self.name) or len(self.name) > 63 - 1 - len(str(self.nodes - 1)):
            raise ValueError(f"job name {self.name!r} is not a short DNS label (a-z, 0-9, '-', letter first)")
        if self.nodes < 2:
            raise ValueError(
                f"a multi-node job needs nodes >= 2, got {self.nodes}: train on one node instead"
            )
        if self.gpus_per_node < 1:
            raise ValueError(f"gpus_per_node must be >= 1, got {self.gpus_per_node}")

    @property
    def rendezvous(self) -> Rendezvous:
        # $(JOB_COMPLETION_INDEX): Kubernetes expands it from the env var the Job controller sets in each pod.
        host = self.rendezvous_host or f"{self.name}-0.{self.name}"
        return Rendezvous(self.nodes, f"$({INDEX_VAR})", f"{host}:{self.port}", self.name)

    def command(self) -> list[str]:
        """What every pod runs: the project's torchrun command, one process per GPU (NCCL)."""
        return torchrun_command(
            self.gpus_per_node,
            self.config,
            self.data,
            self.out,
            rendezvous=self.rendezvous,
            python=self.python,
        )


INDEX_VAR = "JOB_COMPLETION_INDEX"  # set by the Job controller in each pod of an Indexed Job


def labels(job: TrainingJob) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "gan-workflow", LABEL: job.name}


def render_service(job: TrainingJob) -> dict[str, Any]:
    """The headless Service that gives pod 0 its DNS name (the rendezvous endpoint)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": job.name, "labels": labels(job)},
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL: job.name},
            # Pod 0 must resolve before it is Ready: the rendezvous is how it gets there.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "c10d", "port": job.port, "targetPort": job.port}],
        },
    }


def _resources(job: TrainingJob) -> dict[str, Any]:
    gpus = {"nvidia.com/gpu": str(job.gpus_per_node)}
    return {
        "requests": {"cpu": job.cpu, "memory": job.memory, **gpus},
        "limits": {"memory": job.memory, **gpus},
    }


def _volumes(job: TrainingJob, workspace: bool) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts): the workspace claim (unless the launching run already mounts it) and /dev/shm."""
    volumes = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    # NCCL's shared memory: the container default of 64 MiB is too small.
    mounts = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if workspace:
        volumes.insert(0, {"name": "workspace", "persistentVolumeClaim": {"claimName": job.workspace_claim}})
        mounts.insert(0, {"name": "workspace", "mountPath": job.workspace_mount})
    return volumes, mounts


def _container(job: TrainingJob) -> dict[str, Any]:
    """The trainer container, less image, command, resources and mounts (set by who submits it)."""
    return {
        "name": "trainer",
        "env": [{"name": "GAN_WORKSPACE", "value": job.workspace_mount}],
        "ports": [{"name": "c10d", "containerPort": job.port}],
    }


def _pod_spec(job: TrainingJob) -> dict[str, Any]:
    """The pod spec, less containers and volumes."""
    return {
        "subdomain": job.name,  # with the Service: <name>-<index>.<name> resolves to each pod
        "restartPolicy": "Never",
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def _job_spec(job: TrainingJob) -> dict[str, Any]:
    """The Job spec, less its pod template."""
    return {
        "completionMode": "Indexed",
        "completions": job.nodes,
        "parallelism": job.nodes,
        # One lost pod fails the job: its peers are stuck in collectives, and training resumes from the
        # last checkpoint when Dagster retries the run.
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 86400,
    }


def render(job: TrainingJob) -> list[dict[str, Any]]:
    """The headless Service, then the Indexed Job (apply in this order): what `kubectl apply` takes."""
    if not job.image:
        raise ValueError("a Kubernetes job needs an image")
    volumes, mounts = _volumes(job, workspace=True)
    container = {
        **_container(job),
        "image": job.image,
        "command": job.command(),
        "resources": _resources(job),
        "volumeMounts": mounts,
    }
    pod = {
        "metadata": {"labels": labels(job)},
        "spec": {**_pod_spec(job), "containers": [container], "volumes": volumes},
    }
    batch_job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job.name, "labels": labels(job)},
        "spec": {**_job_spec(job), "template": pod},
    }
    return [render_service(job), batch_job]


def execute_k8s_job_kwargs(job: TrainingJob, workspace_mounted: bool = False) -> dict[str, Any]:
    """The same Job as ``render`` in the arguments of ``dagster_k8s.execute_k8s_job`` (besides the context,
    image, namespace and name), which merges them over the launching run's own pod settings (env, secrets,
    volumes, service account). ``workspace_mounted``: the run already mounts the workspace at
    ``job.workspace_mount`` (the chart's includeConfigInLaunchedRuns), so it is not added twice."""
    volumes, mounts = _volumes(job, workspace=not workspace_mounted)
    return {
        "command": job.command(),
        "container_config": _container(job),
        "resources": _resources(job),
        "volumes": volumes,
        "volume_mounts": mounts,
        "pod_spec_config": _pod_spec(job),
        "pod_template_spec_metadata": {"labels": labels(job)},
        "job_metadata": {"labels": labels(job)},
        "job_spec_config": _job_spec(job),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.k8s_training", description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--gpus", type=int, required=True, help="GPUs (torchrun processes) per node")
    ap.add_argument("--image", required=True)
    ap.add_argument("--config", required=True, help="the training config on the workspace volume")
    ap.add_argument("--out", required=True, help="the output folder on the workspace volume")
    ap.add_argument("--data", default="/workspace/data/processed")
    args = ap.parse_args(argv)
    try:
        job = TrainingJob(args.name, args.nodes, args.gpus, args.image, args.config, args.out, args.data)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    yaml.safe_dump_all(render(job), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
