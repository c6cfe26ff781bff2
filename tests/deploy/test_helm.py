"""deploy/helm: values only with keys the dagster/dagster chart knows, and the same policies as dagster.yaml."""

from __future__ import annotations

import yaml

from pipelines.definitions import ASSETS
from pipelines.resources import REPO_ROOT

HELM = REPO_ROOT / "deploy" / "helm"
# The keys of a dagster-k8s/config tag (dagster_k8s.job.USER_DEFINED_K8S_CONFIG_KEYS).
K8S_TAG_KEYS = {
    "container_config",
    "pod_template_spec_metadata",
    "pod_spec_config",
    "job_config",
    "job_metadata",
    "job_spec_config",
    "merge_behavior",
}


def _values() -> dict:
    return yaml.safe_load((HELM / "values.yaml").read_text())


def _known() -> dict:
    return yaml.safe_load((HELM / "chart-keys.yaml").read_text())


def unknown_keys(values, known, path: str = "") -> list[str]:
    """Paths in ``values`` that ``known`` (chart-keys.yaml's shape) does not have."""
    if known is None:  # a leaf or a free-form Kubernetes object
        return []
    if isinstance(known, list):
        if not isinstance(values, list):
            return [f"{path} (expected a list)"]
        return [p for i, item in enumerate(values) for p in unknown_keys(item, known[0], f"{path}[{i}]")]
    if not isinstance(values, dict):
        return [f"{path} (expected a mapping)"]
    out = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        out += [where] if key not in known else unknown_keys(value, known[key], where)
    return out


def test_every_key_is_one_the_chart_knows():
    assert unknown_keys(_values(), _known()) == []


def test_the_key_check_catches_typos():
    values = _values()
    values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfg"] = {}
    values["dagster-user-deployments"]["deployments"][0]["dagsterApiGrpcArg"] = []
    values["dagsterWebserver"] = "oops"
    assert unknown_keys(values, _known()) == [
        "dagsterWebserver (expected a mapping)",
        "dagster-user-deployments.deployments[0].dagsterApiGrpcArg",
        "runLauncher.config.k8sRunLauncher.runK8sConfg",
    ]


def test_runs_are_kubernetes_jobs():
    launcher = _values()["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert set(launcher["config"]) == {"k8sRunLauncher"}


def test_user_deployment_serves_this_code_location_with_step_pods():
    (deployment,) = _values()["dagster-user-deployments"]["deployments"]
    assert {"name", "image", "port"} <= set(deployment)
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == "pipelines.definitions"
    env = {e["name"]: e.get("value") for e in deployment["env"]}
    assert env["GAN_EXECUTOR"] == "k8s"
    assert {"GAN_WORKSPACE", "GAN_STORE_URI"} <= set(env)
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True  # run and step pods get env + volumes


def test_workspace_volume_is_the_shared_claim():
    (deployment,) = _values()["dagster-user-deployments"]["deployments"]
    pvc = yaml.safe_load((HELM / "workspace-pvc.yaml").read_text())
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in deployment["volumes"]}
    assert claims == {pvc["metadata"]["name"]}
    (init,) = deployment["initContainers"]
    assert init["command"] == ["python", "deploy/bootstrap.py"]


def test_policies_match_the_repos_dagster_yaml():
    values, local = _values(), yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    pools, runs = values["concurrency"]["pools"], values["concurrency"]["runs"]
    assert values["concurrency"]["enabled"] is True
    assert pools["defaultLimit"] == local["concurrency"]["pools"]["default_limit"] == 1
    assert pools["granularity"] == local["concurrency"]["pools"]["granularity"]
    assert runs["maxConcurrentRuns"] == local["concurrency"]["runs"]["max_concurrent_runs"]
    retries = values["dagsterDaemon"]["runRetries"]
    assert (retries["enabled"], retries["maxRetries"], retries["retryOnAssetOrOpFailure"]) == (
        local["run_retries"]["enabled"],
        local["run_retries"]["max_retries"],
        local["run_retries"]["retry_on_asset_or_op_failure"],
    )
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True


def test_training_step_requests_a_gpu_through_its_op_tag():
    """trained_generator's `dagster-k8s/config` tag: what its step pod asks Kubernetes for."""
    import pytest

    (trained,) = [a for a in ASSETS if a.key.to_user_string() == "trained_generator"]
    tag = trained.op.tags.get("dagster-k8s/config")
    if tag is None:
        pytest.skip("trained_generator has no dagster-k8s/config op tag yet (deploy/README.md gives it)")
    tag = yaml.safe_load(tag) if isinstance(tag, str) else tag
    assert set(tag) <= K8S_TAG_KEYS
    limits = tag["container_config"]["resources"]["limits"]
    assert str(limits["nvidia.com/gpu"]) == "1"
    for other in ASSETS:  # nothing else asks for a GPU
        if other is not trained:
            assert "nvidia.com/gpu" not in str(other.op.tags.get("dagster-k8s/config", ""))
