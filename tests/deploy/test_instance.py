"""deploy/dagster.postgres.yaml and deploy/workspace.yaml against Dagster's own config schemas."""

from __future__ import annotations

import re

import yaml
from dagster._config import validate_config
from dagster._config.field_utils import Shape
from dagster._core.instance.config import dagster_instance_config_schema
from dagster._core.workspace.config_schema import WORKSPACE_CONFIG_SCHEMA

from pipelines.resources import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def _yaml(path):
    return yaml.safe_load(path.read_text())


def _errors(result) -> list[str]:
    return [e.message for e in result.errors or []]


def test_postgres_instance_config_is_valid_and_reads_credentials_from_env():
    config = _yaml(DEPLOY / "dagster.postgres.yaml")
    result = validate_config(Shape(dagster_instance_config_schema()), config)
    assert result.success, _errors(result)
    db = config["storage"]["postgres"]["postgres_db"]
    assert all(isinstance(v, dict) and set(v) == {"env"} for v in db.values()), "no literal credentials"
    assert {v["env"] for v in db.values()} == {
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_PORT",
        "DAGSTER_PG_USERNAME",
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_DB",
    }


def test_the_schema_check_catches_a_typo():
    config = _yaml(DEPLOY / "dagster.postgres.yaml")
    config["storage"]["postgres"]["postgres_db"]["hostnme"] = config["storage"]["postgres"][
        "postgres_db"
    ].pop("hostname")
    assert not validate_config(Shape(dagster_instance_config_schema()), config).success


def test_postgres_config_keeps_every_setting_of_the_repos_dagster_yaml():
    local = _yaml(REPO_ROOT / "dagster.yaml")
    shared = _yaml(DEPLOY / "dagster.postgres.yaml")
    shared.pop("storage")
    assert shared == local


def test_workspace_yaml_is_valid_and_points_at_the_code_service():
    config = _yaml(DEPLOY / "workspace.yaml")
    result = validate_config(WORKSPACE_CONFIG_SCHEMA, config)
    assert result.success, _errors(result)
    (server,) = [entry["grpc_server"] for entry in config["load_from"]]
    compose = _yaml(DEPLOY / "docker-compose.yaml")
    command = compose["services"][server["host"]]["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-p") + 1] == str(server["port"])
    assert command[command.index("--location-name") + 1] == server["location_name"] == "gan_workflow"


def test_deploy_requirements_pair_with_the_pinned_dagster():
    """dagster 1.13.N ships with its libraries at 0.29.N: a mismatch does not install."""
    pins = dict(
        line.split("==")
        for line in (REPO_ROOT / "requirements/constraints.txt").read_text().splitlines()
        if "==" in line
    )
    major, minor, patch = pins["dagster"].split(".")
    expected = f"0.{int(minor) + 16}.{patch}"
    deploy = dict(
        line.split("==")
        for line in (DEPLOY / "requirements.txt").read_text().splitlines()
        if re.match(r"^[\w-]+==", line)
    )
    assert major == "1"
    assert deploy["dagster-postgres"] == deploy["dagster-k8s"] == expected
