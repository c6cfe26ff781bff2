"""deploy/Dockerfile: a CUDA base, the pinned dependencies, the instance config and the code location."""

from __future__ import annotations

import re
import shlex

from pipelines.resources import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_builds_on_a_cuda_base_image():
    steps = _instructions()
    args = {a.split("=")[0].split()[-1]: a.split("=", 1)[1] for w, a in steps if w == "ARG" and "=" in a}
    (base,) = [a for w, a in steps if w == "FROM"]
    image = args[base.strip("${}")] if base.startswith("$") else base
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-base-ubuntu\d\d\.\d\d", image), image


def test_installs_from_the_pinned_constraints_and_the_deploy_requirements():
    runs = " ".join(a for w, a in _instructions() if w == "RUN")
    assert "-c requirements/constraints.txt" in runs
    assert "-r deploy/requirements.txt" in runs
    assert "pip install --no-deps -e ." in runs  # REPO_ROOT stays the source tree (configs/, dvc.yaml)
    assert "deploy/dagster.postgres.yaml" in runs and '"$DAGSTER_HOME/dagster.yaml"' in runs


def test_default_command_serves_the_code_location_as_compose_and_helm_expect():
    (cmd,) = [a for w, a in _instructions() if w == "CMD"]
    argv = shlex.split(cmd.strip("[]").replace('", "', " ").replace('"', ""))
    assert argv[:3] == ["dagster", "code-server", "start"]
    assert argv[argv.index("-m") + 1] == "pipelines.definitions"
    users = [a for w, a in _instructions() if w == "USER"]
    assert users and users[-1] != "root"


def test_build_context_leaves_out_data_and_environments():
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for path in (".git", ".venv", "outputs", "data/raw/*", "data/processed", ".dagster_home", "deploy/.env"):
        assert path in ignored
