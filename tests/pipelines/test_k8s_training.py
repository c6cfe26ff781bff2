"""The multi-node training manifests (pipelines.k8s_training) against the Kubernetes API's own object models
(the `kubernetes` client, offline): required fields are present and every key is one the API knows."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from pipelines.k8s_training import TrainingJob, main, render

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
