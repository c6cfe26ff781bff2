"""The project is a `dg` project: `dg check defs` loads it, `dg list defs` lists the chain, and the location
has one name everywhere (pyproject's [tool.dagster] and [tool.dg.project], deploy/workspace.yaml)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

from pipelines.definitions import ASSETS, SOURCES
from pipelines.resources import REPO_ROOT


def _dg(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dg")
    return subprocess.run([str(exe), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_dg_check_defs_passes():
    result = _dg("check", "defs")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_dg_list_defs_lists_every_asset():
    result = _dg("list", "defs", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    listed = {a["asset_key"] for a in json.loads(result.stdout)["assets"]}
    assert listed == {a.key.to_user_string() for a in [*SOURCES, *ASSETS]}


def test_one_location_name_everywhere():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]
    workspace = yaml.safe_load((REPO_ROOT / "deploy" / "workspace.yaml").read_text())
    names = {
        pyproject["dagster"]["code_location_name"],
        pyproject["dg"]["project"]["code_location_name"],
        *(entry["grpc_server"]["location_name"] for entry in workspace["load_from"]),
    }
    assert names == {"gan_workflow"}
    assert pyproject["dagster"]["module_name"] == pyproject["dg"]["project"]["code_location_target_module"]
