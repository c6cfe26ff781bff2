"""The Kubernetes objects of a multi-node training run: an Indexed Job whose N pods each run torchrun (node
rank = the pod's completion index) plus a headless Service that gives pod 0 a DNS name, the c10d rendezvous
endpoint. Torch-free: rendered in the code location (or from the command line) and applied with the
Kubernetes API (deploy/README.md, "Many nodes").

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
    image: str
    config: str  # paths on the workspace volume
    out: str
    data: str = "/workspace/data/processed"
    workspace_claim: str = "gan-workspace"  # deploy/helm/workspace-pvc.yaml
    workspace_mount: str = "/workspace"
    cpu: str = "8"
    memory: str = "32Gi"
    port: int = RDZV_PORT

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
        endpoint = f"{self.name}-0.{self.name}:{self.port}"
        return Rendezvous(self.nodes, "$(JOB_COMPLETION_INDEX)", endpoint, self.name)

    def command(self) -> list[str]:
        """What every pod runs: the project's torchrun command, one process per GPU (NCCL)."""
        return torchrun_command(
            self.gpus_per_node, self.config, self.data, self.out, rendezvous=self.rendezvous, python="python"
        )


def render(job: TrainingJob) -> list[dict[str, Any]]:
    """The headless Service, then the Indexed Job (apply in this order)."""
    labels = {"app.kubernetes.io/part-of": "gan-workflow", LABEL: job.name}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": job.name, "labels": dict(labels)},
        "spec": {
            "clusterIP": "None",
            "selector": {LABEL: job.name},
            # Pod 0 must resolve before it is Ready: the rendezvous is how it gets there.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "c10d", "port": job.port, "targetPort": job.port}],
        },
    }
    gpus = {"nvidia.com/gpu": str(job.gpus_per_node)}
    container = {
        "name": "trainer",
        "image": job.image,
        "command": job.command(),
        "env": [{"name": "GAN_WORKSPACE", "value": job.workspace_mount}],
        "ports": [{"name": "c10d", "containerPort": job.port}],
        "resources": {
            "requests": {"cpu": job.cpu, "memory": job.memory, **gpus},
            "limits": {"memory": job.memory, **gpus},
        },
        "volumeMounts": [
            {"name": "workspace", "mountPath": job.workspace_mount},
            # NCCL's shared memory: the container default of 64 MiB is too small.
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    pod = {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "subdomain": job.name,  # with the Service: <name>-<index>.<name> resolves to each pod
            "restartPolicy": "Never",
            "containers": [container],
            "volumes": [
                {"name": "workspace", "persistentVolumeClaim": {"claimName": job.workspace_claim}},
                {"name": "dshm", "emptyDir": {"medium": "Memory"}},
            ],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    }
    batch_job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job.name, "labels": dict(labels)},
        "spec": {
            "completionMode": "Indexed",
            "completions": job.nodes,
            "parallelism": job.nodes,
            # One lost pod fails the job: its peers are stuck in collectives, and training resumes from the
            # last checkpoint when Dagster retries the run.
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 86400,
            "template": pod,
        },
    }
    return [service, batch_job]


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
