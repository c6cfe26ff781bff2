"""deploy/docker-compose.yaml: parsed and checked here, and by `docker compose config` where a client is."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache

import pytest
import yaml

from pipelines.resources import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yaml"
GPU = DEPLOY / "docker-compose.gpu.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DAGSTER_SERVICES = ("bootstrap", "code", "webserver", "daemon")
# What the code reads from the environment (pipelines/resources.py, ganlib/store.py, the instance config).
CODE_ENV = (
    "DAGSTER_HOME",
    "GAN_WORKSPACE",
    "GAN_STORE_URI",
    "GAN_STORE_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "DAGSTER_PG_HOST",
    "DAGSTER_PG_PORT",
    "DAGSTER_PG_USERNAME",
    "DAGSTER_PG_PASSWORD",
    "DAGSTER_PG_DB",
)


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@cache
def _compose_cli() -> list[str] | None:
    """`docker compose` (the v2 plugin) or a v2 `docker-compose` binary; config needs no Docker engine."""
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(cmd[0]):
            continue
        try:
            out = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and re.search(r"version v?2\.", out.stdout):
            return cmd
    return None


def _run_config(*files, env_file=ENV_EXAMPLE) -> subprocess.CompletedProcess:
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "no Docker Compose v2 client here (neither the `docker compose` plugin nor docker-compose v2)"
        )
    args = [*cli]
    for f in files:
        args += ["-f", str(f)]
    args += ["--env-file", str(env_file)]
    # Only PATH/HOME from outside: a developer's own AWS_* or DAGSTER_* must not make this pass.
    env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run([*args, "config", "--quiet"], capture_output=True, text=True, timeout=60, env=env)


def test_compose_config_validates():
    result = _run_config(COMPOSE)
    assert result.returncode == 0, result.stderr


def test_compose_config_validates_with_the_gpu_override():
    result = _run_config(COMPOSE, GPU)
    assert result.returncode == 0, result.stderr


def test_missing_secrets_stop_compose_with_a_message():
    result = _run_config(COMPOSE, env_file=os.devnull)  # not deploy/.env, which compose would read itself
    assert result.returncode != 0
    assert "required variable" in result.stderr and "in deploy/.env" in result.stderr


def test_stack_has_postgres_an_s3_server_and_the_dagster_services():
    services = _compose()["services"]
    assert set(services) == {"postgres", "s3", *DAGSTER_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:")
    s3_image = services["s3"]["image"]
    assert "minio" not in s3_image and s3_image.startswith("chrislusf/seaweedfs:")
    for name in ("postgres", "s3"):
        tag = services[name]["image"].rsplit(":", 1)[1]
        assert tag != "latest", f"{name} must pin its image"


def test_dagster_services_share_one_image_and_the_code_environment():
    services = _compose()["services"]
    images = {services[s]["image"] for s in DAGSTER_SERVICES}
    assert len(images) == 1
    for name in DAGSTER_SERVICES:
        env = services[name]["environment"]
        missing = [k for k in CODE_ENV if k not in env]
        assert not missing, f"{name} lacks {missing}"
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"


def test_secrets_come_from_the_env_file_not_the_compose_file():
    env = _compose()["services"]["code"]["environment"]
    for key in ("DAGSTER_PG_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key].startswith("${") and ":?" in env[key], f"{key} must be required from the environment"
    assert (DEPLOY / ".gitignore").read_text().split().count(".env") == 1


def test_runs_execute_where_the_workspace_and_the_gpu_are():
    compose = _compose()
    code = compose["services"]["code"]
    assert "workspace:/workspace" in code["volumes"]
    assert "workspace:/workspace" in compose["services"]["bootstrap"]["volumes"]
    gpu = yaml.safe_load(GPU.read_text())["services"]["code"]["deploy"]["resources"]["reservations"][
        "devices"
    ]
    assert gpu == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_ui_listens_on_loopback_only():
    ports = _compose()["services"]["webserver"]["ports"]
    assert all(p.startswith("127.0.0.1:") for p in ports)


def test_services_start_in_order():
    services = _compose()["services"]
    assert services["code"]["depends_on"]["bootstrap"]["condition"] == "service_completed_successfully"
    assert services["code"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("webserver", "daemon"):
        assert services[name]["depends_on"]["code"]["condition"] == "service_healthy"
