"""The multi-node training manifests (pipelines.k8s_training) against the Kubernetes API's own object models
(the `kubernetes` client, offline): required fields are present and every key is one the API knows."""

from __future__ import annotations

import copy
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from pipelines.k8s_training import TrainingJob, execute_k8s_job_kwargs, main, render
from pipelines.multinode import mounts_at

REPO = Path(__file__).resolve().parents[2]
MODELS = {("v1", "Service"): "V1Service", ("batch/v1", "Job"): "V1Job"}


class _Response:  # what ApiClient.deserialize reads: a body of JSON
    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body)


def _unknown_keys(sent: Any, kept: Any, path: str = "") -> list[str]:
    if isinstance(sent, dict):
        kept = kept if isinstance(kept, dict) else {}
        return [u for k, v in sent.items() for u in _unknown_keys(v, kept.get(k), f"{path}.{k}")] + [
            f"{path}.{k}" for k in sent if k not in kept
        ]
    if isinstance(sent, list):
        kept = kept if isinstance(kept, list) else []
        return [u for i, v in enumerate(sent) for u in _unknown_keys(v, kept[i] if i < len(kept) else None)]
    return []


def validate(obj: dict[str, Any]) -> Any:
    """The object as the client's model (its constructors check required fields); any key the model does not
    have is dropped by deserialization, so a round trip that loses a key means the API would reject it."""
    api = ApiClient()
    model = api.deserialize(_Response(obj), MODELS[obj["apiVersion"], obj["kind"]])
    unknown = _unknown_keys(obj, api.sanitize_for_serialization(model))
    if unknown:
        raise ValueError(f"{obj['kind']}: unknown keys {unknown}")
    return model


def _job(**kw: Any) -> TrainingJob:
    args = dict(name="gan-train-r1", nodes=2, gpus_per_node=8, image="registry.example.com/gan:abc")
    return TrainingJob(
        **{**args, "config": "/workspace/outputs/r1/cfg.yaml", "out": "/workspace/outputs/r1", **kw}
    )


def test_two_node_job_and_service_are_valid_kubernetes_objects() -> None:
    service, job = (validate(o) for o in render(_job()))
    assert service.spec.cluster_ip == "None" and service.spec.publish_not_ready_addresses
    assert job.spec.completion_mode == "Indexed" and job.spec.completions == job.spec.parallelism == 2
    pod = job.spec.template.spec
    assert pod.subdomain == service.metadata.name == "gan-train-r1" and pod.restart_policy == "Never"
    assert service.spec.selector.items() <= job.spec.template.metadata.labels.items()
    (c,) = pod.containers
    assert c.command[:3] == ["python", "-m", "torch.distributed.run"]
    assert {"--nnodes=2", "--node_rank=$(JOB_COMPLETION_INDEX)", "--rdzv_backend=c10d"} <= set(c.command)
    assert "--rdzv_endpoint=gan-train-r1-0.gan-train-r1:29400" in c.command  # pod 0 via the headless Service
    assert "--nproc_per_node=8" in c.command and c.command[c.command.index("-m", 3) + 1] == "ganlib.train_cli"
    assert c.resources.requests["nvidia.com/gpu"] == c.resources.limits["nvidia.com/gpu"] == "8"
    assert service.spec.ports[0].port == c.ports[0].container_port == 29400
    claim = yaml.safe_load((REPO / "deploy/helm/workspace-pvc.yaml").read_text())["metadata"]["name"]
    volumes = {v.name: v for v in pod.volumes}
    assert volumes["workspace"].persistent_volume_claim.claim_name == claim
    assert volumes["dshm"].empty_dir.medium == "Memory"
    assert {m.name: m.mount_path for m in c.volume_mounts} == {"workspace": "/workspace", "dshm": "/dev/shm"}


@pytest.mark.parametrize(
    "where, key",
    [
        (lambda job: job["spec"], "completionmode"),  # misspelled completionMode
        (lambda job: job["spec"]["template"]["spec"]["containers"][0], "volumeMount"),
        (lambda job: job["spec"]["template"]["spec"], "subDomain"),
    ],
)
def test_a_misspelled_key_fails_validation(where, key) -> None:
    job = copy.deepcopy(render(_job())[1])
    where(job)[key] = "x"
    with pytest.raises(ValueError, match=f"unknown keys .*{key}"):
        validate(job)


def test_a_missing_required_field_fails_validation() -> None:
    job = copy.deepcopy(render(_job())[1])
    del job["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(ValueError, match="name"):
        validate(job)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(nodes=1), "nodes >= 2"),
        (dict(name="Gan_Train"), "not a short DNS label"),
        (dict(gpus_per_node=0), "gpus_per_node must be >= 1"),
    ],
)
def test_bad_job_settings_are_refused(kw, message) -> None:
    with pytest.raises(ValueError, match=message):
        _job(**kw)


def test_cli_prints_the_manifests_or_one_line(capsys) -> None:
    args = ["--name", "gan-train-r1", "--gpus", "8", "--image", "img:1", "--config", "/w/c", "--out", "/w/o"]
    assert main([*args, "--nodes", "2"]) == 0
    assert [validate(o).kind for o in yaml.safe_load_all(capsys.readouterr().out)] == ["Service", "Job"]
    with pytest.raises(SystemExit, match="nodes >= 2"):
        main([*args, "--nodes", "1"])


# --- What the trained_generator asset submits (pipelines/multinode.py, KubernetesNodeLauncher) ---------------

HELM = REPO / "deploy" / "helm"


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def run_context_from_helm_values() -> Any:
    """The launching run's pod settings as deploy/helm/values.yaml gives them: the run launcher's config,
    then the code location's env, secrets and volumes (includeConfigInLaunchedRuns), merged in the order
    dagster-k8s's K8sContainerContext.create_for_run merges them."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import UserDefinedDagsterK8sConfig

    values = yaml.safe_load((HELM / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher_context = K8sContainerContext(
        image_pull_policy=launcher.get("imagePullPolicy"),
        env_secrets=[s["name"] for s in launcher.get("envSecrets", [])],
        service_account_name=values["global"]["serviceAccountName"],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            {_snake(k): v for k, v in launcher.get("runK8sConfig", {}).items()}
        ),
    )
    code_location = K8sContainerContext(
        env=deployment.get("env", []),
        env_secrets=[s["name"] for s in deployment.get("envSecrets", [])],
        volumes=deployment.get("volumes", []),
        volume_mounts=deployment.get("volumeMounts", []),
    )
    return launcher_context.merge(code_location)


def job_as_dagster_k8s_builds_it(job: TrainingJob, run_context: Any) -> dict[str, Any]:
    """The Job body dagster-k8s's execute_k8s_job (0.29.27, dagster_k8s/ops/k8s_job_op.py) sends to
    create_namespaced_job for the launcher's arguments: the op's K8sContainerContext from its keyword
    arguments, merged over the run's, then construct_dagster_k8s_job. Offline: no API call is made."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

    kw = execute_k8s_job_kwargs(job, workspace_mounted=mounts_at(run_context, job.workspace_mount))
    container_config = {**kw["container_config"], "command": kw["command"]}
    op_context = K8sContainerContext(
        volume_mounts=kw["volume_mounts"],
        volumes=kw["volumes"],
        resources=kw["resources"],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            {
                "container_config": container_config,
                "pod_template_spec_metadata": kw["pod_template_spec_metadata"],
                "pod_spec_config": kw["pod_spec_config"],
                "job_metadata": kw["job_metadata"],
                "job_spec_config": kw["job_spec_config"],
                "merge_behavior": "DEEP",
            }
        ),
    )
    merged = run_context.merge(op_context)
    body = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image=job.image, dagster_home=None),
        args=None,
        job_name=job.name,
        pod_name=job.name,
        component="k8s_job_op",
        user_defined_k8s_config=merged.run_k8s_config,
        labels={"dagster/op": "trained_generator"},
    )
    return ApiClient().sanitize_for_serialization(body)


def test_the_launcher_arguments_are_ones_execute_k8s_job_takes() -> None:
    from dagster_k8s import execute_k8s_job

    kwargs = execute_k8s_job_kwargs(_job())
    inspect.signature(execute_k8s_job).bind(None, image="i", namespace="n", k8s_job_name="j", **kwargs)


@pytest.mark.parametrize("inherit", [True, False], ids=["chart-run-context", "bare-run-context"])
def test_the_job_the_asset_submits_is_valid_and_is_the_rendered_job(inherit: bool) -> None:
    """Built as dagster-k8s builds it, over the run settings the Helm values give (or none): a valid Job,
    the same Indexed layout, command, resources and volumes as the kubectl manifests, each volume and
    mount once, and the run's secrets and env reaching the training pods."""
    from dagster_k8s.container_context import K8sContainerContext

    job = _job()
    body = job_as_dagster_k8s_builds_it(
        job, run_context_from_helm_values() if inherit else K8sContainerContext()
    )
    submitted, (service, rendered) = validate(body), render(job)
    validate(service)
    assert submitted.metadata.name == job.name
    spec, pod = submitted.spec, submitted.spec.template.spec
    assert (spec.completion_mode, spec.completions, spec.parallelism, spec.backoff_limit) == (
        "Indexed",
        2,
        2,
        0,
    )
    assert pod.subdomain == service["metadata"]["name"] and pod.restart_policy == "Never"
    assert service["spec"]["selector"].items() <= spec.template.metadata.labels.items()
    (c,) = pod.containers
    (want,) = rendered["spec"]["template"]["spec"]["containers"]
    assert c.command == want["command"] and c.image == job.image
    assert c.resources.requests == want["resources"]["requests"]
    assert c.resources.limits == want["resources"]["limits"]
    names = [v.name for v in pod.volumes]
    assert len(names) == len(set(names))
    assert len({m.mount_path for m in c.volume_mounts}) == len(c.volume_mounts)
    volumes = {v.name: v for v in pod.volumes}
    mounts = {m.mount_path: m.name for m in c.volume_mounts}
    assert volumes[mounts["/workspace"]].persistent_volume_claim.claim_name == "gan-workspace"
    assert volumes[mounts["/dev/shm"]].empty_dir.medium == "Memory"
    env = {e.name: e.value for e in c.env}
    assert env["GAN_WORKSPACE"] == "/workspace"
    if inherit:  # the S3 credentials and the store settings the chart gives every run
        assert [s.secret_ref.name for s in c.env_from] == ["gan-s3-credentials"]
        assert env["GAN_STORE_URI"].startswith("s3://")
        assert pod.service_account_name == "dagster"


# --- RBAC for that path (deploy/helm/training-rbac.yaml) ------------------------------------------------------

RBAC_MODELS = {"Role": "V1Role", "RoleBinding": "V1RoleBinding"}
# A Kubernetes client method: VERB_namespaced_KIND[_status|_log] (not a wrapper such as ..._with_retries).
_API_CALL = re.compile(
    r"\b(create|read|list|delete|patch|replace)_namespaced_([a-z]+(?:_status|_log)?)(?![a-z_])"
)
_VERB = {
    "create": "create",
    "read": "get",
    "list": "list",
    "delete": "delete",
    "patch": "patch",
    "replace": "update",
}


def required_permissions() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every namespaced API call in the launch path's code: the launcher's own
    and dagster-k8s's Kubernetes client and execute_k8s_job, read from their source."""
    import dagster_k8s.client
    import dagster_k8s.ops.k8s_job_op

    import pipelines.multinode

    needed = set()
    for module in (pipelines.multinode, dagster_k8s.client, dagster_k8s.ops.k8s_job_op):
        for verb, kind in _API_CALL.findall(inspect.getsource(module)):
            base, _, sub = kind.partition("_")
            resource = f"{base}s/{sub}" if sub else f"{base}s"
            needed.add(("batch" if base == "job" else "", resource, _VERB[verb]))
    return needed


def test_training_rbac_is_valid_and_grants_every_call_of_the_launch_path() -> None:
    docs = list(yaml.safe_load_all((HELM / "training-rbac.yaml").read_text()))
    api = ApiClient()
    role, binding = (api.deserialize(_Response(d), RBAC_MODELS[d["kind"]]) for d in docs)
    for doc, model in zip(docs, (role, binding), strict=True):
        assert _unknown_keys(doc, api.sanitize_for_serialization(model)) == []
    granted = {
        (g, r, v) for rule in role.rules for g in rule.api_groups for r in rule.resources for v in rule.verbs
    }
    needed = required_permissions()
    assert {("", "services", "create"), ("batch", "jobs", "create"), ("", "pods/log", "get")} <= needed
    assert needed - granted == set()
    assert not any("*" in (g, r, v) for g, r, v in granted)  # no wildcard grants
    for resource in ("jobs", "services", "pods"):  # watches, as the brief for the deployment asks
        assert any(r == resource and v == "watch" for _, r, v in granted)
    values = yaml.safe_load((HELM / "values.yaml").read_text())
    (subject,) = binding.subjects
    assert (subject.kind, subject.name) == ("ServiceAccount", values["global"]["serviceAccountName"])
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", role.metadata.name)


def test_rbac_check_catches_a_missing_grant() -> None:
    docs = list(yaml.safe_load_all((HELM / "training-rbac.yaml").read_text()))
    docs[0]["rules"] = [r for r in docs[0]["rules"] if "services" not in r["resources"]]
    granted = {
        (g, r, v)
        for rule in docs[0]["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert ("", "services", "create") in required_permissions() - granted
