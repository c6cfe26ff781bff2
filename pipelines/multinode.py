"""Training on several nodes: the ``trained_generator`` asset's path when ``compute.nodes > 1``.

The asset writes the config to its run folder on the workspace, describes the job (``TrainingJob``: N nodes x
K processes, each node running ``ganlib.train_cli`` under torchrun with c10d rendezvous), hands it to the
``node_launcher`` resource, and reads rank 0's result back from the run folder, which every node shares.

The launcher is the one seam between the asset and where the nodes run:

* ``KubernetesNodeLauncher`` (the deployment's): creates the headless Service with the ``kubernetes`` client,
  then submits the Indexed Job with dagster-k8s's ``execute_k8s_job``, which merges in the launching run's
  own pod settings (env, secrets, volumes, service account), streams pod 0's log into the run, waits until
  all N pods succeed, and on failure logs each pod's debug info and deletes the Job. The Service (and a
  finished Job) are deleted afterwards. Needs the Role in deploy/helm/training-rbac.yaml.
* ``LoopbackNodeLauncher``: the N nodes as torchrun processes on this machine, rendezvous on 127.0.0.1, each
  running the pod's command with ``$(JOB_COMPLETION_INDEX)`` expanded as the kubelet would. Tests use it;
  it is also a way to try the multi-node path on one machine.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from pipelines.k8s_training import INDEX_VAR, TrainingJob, execute_k8s_job_kwargs, render_service
from pipelines.resources import REPO_ROOT, ComputeResource

if TYPE_CHECKING:
    from ganlib.config import GANConfig
    from ganlib.training import TrainResult


def job_name(run_id: str, retry_number: int = 0) -> str:
    """The Job (and Service) name of a run's training step. dagster-k8s's ``execute_k8s_job`` appends
    ``-<retry>`` to the name it is given when the step is retried; the pods' rendezvous address must use the
    name the Job really gets, so this spells the same rule."""
    base = f"gan-train-{run_id[:8]}"
    return f"{base}-{retry_number}" if retry_number > 0 else base


class NodeLauncher(dg.ConfigurableResource):
    """Starts the nodes of a multi-node training job and returns when all of them have finished."""

    def training_job(
        self,
        context: dg.AssetExecutionContext,
        name: str,
        nodes: int,
        processes: int,
        paths: dict[str, Path],
        workspace_root: Path,
    ) -> TrainingJob:
        raise NotImplementedError

    def launch(self, context: dg.AssetExecutionContext, job: TrainingJob) -> None:
        raise NotImplementedError


class KubernetesNodeLauncher(NodeLauncher):
    """An Indexed Job + headless Service in the cluster the run executes in (see the module docstring)."""

    image: str | None = Field(
        None, description="the trainer image; unset = the image of the code location that launched the run"
    )
    namespace: str | None = Field(None, description="unset = the run's namespace (or the pod's own)")
    workspace_claim: str = Field("gan-workspace", description="the workspace volume's claim (ReadWriteMany)")
    workspace_mount: str = Field("/workspace", description="where the pods mount it")
    cpu: str = "8"
    memory: str = "32Gi"
    timeout_s: int = Field(0, description="give up on the Job after this long; 0 = never")
    load_incluster_config: bool = Field(True, description="false: use kubeconfig_file (outside a cluster)")
    kubeconfig_file: str | None = None

    def training_job(self, context, name, nodes, processes, paths, workspace_root) -> TrainingJob:
        origin = context.dagster_run.job_code_origin
        image = (
            self.image
            or (origin.repository_origin.container_image if origin else None)
            or os.environ.get("DAGSTER_CURRENT_IMAGE")  # set by the chart on the code location
        )
        if not image:
            raise dg.Failure(
                "node_launcher: no image for the training pods; set resources.node_launcher.config.image",
                allow_retries=False,
            )

        def on_volume(path: Path) -> str:  # the same file as the pods see it
            try:
                return str(PurePosixPath(self.workspace_mount) / path.resolve().relative_to(workspace_root))
            except ValueError:
                raise dg.Failure(
                    f"{path} is outside the workspace {workspace_root}: the training pods only see the "
                    f"workspace volume",
                    allow_retries=False,
                ) from None

        return TrainingJob(
            name,
            nodes,
            processes,
            image,
            **{key: on_volume(path) for key, path in paths.items()},
            workspace_claim=self.workspace_claim,
            workspace_mount=self.workspace_mount,
            cpu=self.cpu,
            memory=self.memory,
        )

    def launch(self, context: dg.AssetExecutionContext, job: TrainingJob) -> None:
        import kubernetes
        from dagster_k8s import K8sRunLauncher, execute_k8s_job
        from dagster_k8s.client import DagsterKubernetesClient
        from dagster_k8s.container_context import K8sContainerContext
        from dagster_k8s.utils import detect_current_namespace

        from ganlib.distributed_launch import TorchrunFailed

        run_launcher = context.instance.run_launcher
        inherited = K8sContainerContext.create_for_run(
            context.dagster_run,
            run_launcher if isinstance(run_launcher, K8sRunLauncher) else None,
            include_run_tags=False,
        )
        namespace = (
            self.namespace
            or inherited.namespace
            or detect_current_namespace(self.kubeconfig_file)
            or "default"
        )
        if self.load_incluster_config:
            kubernetes.config.load_incluster_config()
        else:
            kubernetes.config.load_kube_config(self.kubeconfig_file)
        core = kubernetes.client.CoreV1Api()
        where = f"namespace {namespace} at {core.api_client.configuration.host}"
        try:
            core.create_namespaced_service(namespace, render_service(job))
        except Exception as exc:  # ApiException (refused) or urllib3's errors (unreachable)
            raise TorchrunFailed(f"could not create Service {job.name} in {where}: {_short(exc)}") from None
        try:
            execute_k8s_job(
                context.op_execution_context,
                image=job.image,
                namespace=namespace,
                k8s_job_name=job_name(context.run_id),  # execute_k8s_job adds the retry suffix itself
                timeout=self.timeout_s or None,
                load_incluster_config=self.load_incluster_config,
                kubeconfig_file=self.kubeconfig_file,
                **execute_k8s_job_kwargs(job, workspace_mounted=mounts_at(inherited, job.workspace_mount)),
            )
        except Exception as exc:  # execute_k8s_job has logged the pods' debug info and deleted the Job
            raise TorchrunFailed(
                f"the {job.nodes}-node Job {job.name} in {where} failed: {_short(exc)}"
            ) from None
        finally:
            _cleanup(context, "Service", lambda: core.delete_namespaced_service(job.name, namespace))
        # Succeeded: the result is on the volume; the Job's pods need not wait for its TTL.
        client = DagsterKubernetesClient.production_client()
        _cleanup(context, "Job", lambda: client.delete_job(job.name, namespace))


def _cleanup(context: dg.AssetExecutionContext, what: str, delete: Callable[[], object]) -> None:
    try:
        delete()
    except Exception as exc:  # the training is done either way; the TTL removes what is left
        context.log.warning(f"could not delete the training {what}: {_short(exc)}")


def mounts_at(container_context: Any, path: str) -> bool:
    """Whether a dagster-k8s container context already mounts a volume at ``path``."""
    mounts = container_context.run_k8s_config.container_config.get("volume_mounts", [])
    return any(m.get("mount_path") == path for m in mounts)


def _short(exc: Exception) -> str:
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    return f"{status} {reason}" if status else f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"


class LoopbackNodeLauncher(NodeLauncher):
    """Every node as a torchrun process on this machine, meeting on 127.0.0.1 (see the module docstring)."""

    timeout_s: float = Field(1800.0, description="kill the nodes after this long")

    def training_job(self, context, name, nodes, processes, paths, workspace_root) -> TrainingJob:
        return TrainingJob(
            name,
            nodes,
            processes,
            image="",
            **{key: str(path) for key, path in paths.items()},
            workspace_mount=str(workspace_root),
            port=free_port(),
            rendezvous_host="127.0.0.1",
            python=sys.executable,
        )

    def launch(self, context: dg.AssetExecutionContext, job: TrainingJob) -> None:
        from ganlib.distributed_launch import TorchrunFailed

        out = Path(job.out)
        procs: list[subprocess.Popen] = []
        logs = [out / f"node-{i}.log" for i in range(job.nodes)]
        try:
            for i, log in enumerate(logs):
                # What the Job controller and kubelet give pod i: its index, the pod env, the command.
                env = {**os.environ, INDEX_VAR: str(i), "GAN_WORKSPACE": job.workspace_mount}
                env.setdefault("OMP_NUM_THREADS", "1")
                cmd = [expand_k8s_vars(arg, env) for arg in job.command()]
                with log.open("w") as f:  # the checkout's ganlib, as the image's /opt/gan is the pods'
                    procs.append(
                        subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
                    )
            deadline = time.monotonic() + self.timeout_s
            while any(p.poll() is None for p in procs):
                failed = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
                if failed or time.monotonic() > deadline:  # its peers would wait in collectives: stop them
                    break
                time.sleep(0.5)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
        bad = [i for i, p in enumerate(procs) if p.returncode != 0]
        if bad:
            raise TorchrunFailed(
                f"node {bad[0]} of {job.nodes} failed (exit {procs[bad[0]].returncode}; logs in {out}):\n"
                + _root_cause(logs[bad[0]].read_text())
            )
        context.log.info(
            f"{job.nodes} nodes finished on this machine; their logs: {', '.join(map(str, logs))}"
        )


def _root_cause(log: str, lines: int = 20) -> str:
    """The end of a node's log before torchrun's own report (its traceback and "ChildFailedError" box only
    say that a worker failed; the workers' lines, prefixed ``[rankN]:``, come before it)."""
    text = log.splitlines()
    report = [i for i, line in enumerate(text) if line.startswith("Traceback (most recent call last)")]
    if report and any("ChildFailedError" in line for line in text[report[-1] :]):
        text = text[: report[-1]]
    return "\n".join(text[-lines:])


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand_k8s_vars(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of a container command: ``$(VAR)`` from the container's env (left as written when
    undefined), ``$$`` for a literal ``$``."""
    return _VAR_REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), arg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_on_nodes(
    context: dg.AssetExecutionContext,
    cfg: GANConfig,
    data: str | Path,
    run_dir: Path,
    workspace_root: Path,
    compute: ComputeResource,
    launcher: NodeLauncher,
) -> TrainResult:
    """Train ``cfg`` as one job of ``compute.nodes`` x ``compute.processes`` processes through ``launcher``;
    rank 0's result, read from ``run_dir``. Resumes from ``run_dir``'s checkpoint like every other path."""
    from ganlib.distributed_launch import read_torchrun_result, write_torchrun_config

    config = write_torchrun_config(cfg, run_dir)
    paths = {"config": config, "out": run_dir, "data": Path(data)}
    name = job_name(context.run_id, context.retry_number)
    job = launcher.training_job(context, name, compute.nodes, compute.processes, paths, workspace_root)
    context.log.info(
        f"launching {job.nodes} nodes x {job.gpus_per_node} processes: {' '.join(job.command())}"
    )
    launcher.launch(context, job)
    label = f"{job.nodes} nodes, torchrun"
    return read_torchrun_result(run_dir, compute.nodes * compute.processes, launcher=label)
