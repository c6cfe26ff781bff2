"""The layering rules as code: `lint-imports` checks the contracts in pyproject's [tool.importlinter]
(ganlib never imports dagster; the consumer never reaches torch; models know nothing of training or pruning;
metrics never import training; the pipelines never touch torch themselves)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

from pipelines.resources import REPO_ROOT


def test_import_contracts_are_kept():
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    contracts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in result.stdout
