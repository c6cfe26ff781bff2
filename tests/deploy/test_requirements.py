"""The deployment image's requirements resolve against the pinned constraints, as the Dockerfile installs
them (``pip install -c requirements/constraints.txt -r deploy/requirements.txt ".[train,serve]"``), so a pin
that does not exist, or that the pinned dagster cannot use, fails here and not in an image build."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.resources import REPO_ROOT

pytestmark = pytest.mark.slow
# pip's words when the package registry cannot be reached (then there is nothing to decide here).
OFFLINE = (
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


def _project_requirements(*extras: str) -> list[str]:
    """The image's ``.[train,serve]`` as requirement strings (no build of the project needed)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    return [*project["dependencies"], *(r for e in extras for r in optional[e])]


def test_deploy_requirements_resolve_with_the_constraints(tmp_path) -> None:
    cmd = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--disable-pip-version-check", "--report", str(tmp_path / "report.json"),
        "-c", str(REPO_ROOT / "requirements/constraints.txt"),
        "-r", str(REPO_ROOT / "deploy/requirements.txt"),
        *_project_requirements("train", "serve"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode and any(word in proc.stderr for word in OFFLINE):
        pytest.skip(f"the package registry is unreachable: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = {
        p["metadata"]["name"].lower(): p["metadata"]["version"]
        for p in json.loads((tmp_path / "report.json").read_text())["install"]
    }
    minor, patch = chosen["dagster"].split(".")[1:]
    assert chosen["dagster-k8s"] == chosen["dagster-postgres"] == f"0.{int(minor) + 16}.{patch}"
