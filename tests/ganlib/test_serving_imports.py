"""The consumer path must import and run without torch, dagster or dvc (a service image has none of them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "consumer"
CHECK = (
    "import sys; {imports}; "
    "heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'torchvision', 'dagster', 'dvc'}}); "
    "assert not heavy, heavy"
)


def _run(imports: str) -> None:
    # sys.modules after the imports is the ground truth, indirect imports included.
    proc = subprocess.run(
        [sys.executable, "-c", CHECK.format(imports=imports)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_serving_and_cli_import_no_heavy_frameworks():
    _run("import ganlib.serving, ganlib.serving_cli, ganlib.store")


def test_importing_ganlib_itself_is_torch_free():
    _run("import ganlib")


# Makes any import of the heavy frameworks fail, as in an image without them: catches lazy imports inside
# functions too, which a sys.modules check after importing the modules cannot see.
BLOCKER = """
import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "torchvision", "dagster", "dvc"}:
            raise ImportError(f"blocked in this test: {name}")
sys.meta_path.insert(0, _Blocker())
"""
RUN_CONSUMER = """
import numpy as np
from ganlib import serving_cli
from ganlib.serving import OnnxGenerator, pull
assert serving_cli.main(["--uri", STORE, "--model", "digits", "--n", "4", "--device", "cpu",
                         "--cache-dir", CACHE, "--out", OUT]) == 0
gen = OnnxGenerator(pull(STORE, "digits", cache_dir=CACHE).path, device="cpu")
z = gen.latents(2, seed=0)
assert gen.interpolate(z[0], z[1], 4).shape[0] == 4
"""


def test_consumer_runs_end_to_end_with_heavy_frameworks_unimportable(onnx_models, tmp_path):
    from model_helpers import manifest_fields

    from ganlib.store import LocalStore, publish

    store = LocalStore(tmp_path / "store")
    publish(store, "digits", "v1", onnx_models["cond"].path, manifest_fields(onnx_models["cond"]))
    paths = f"STORE, CACHE, OUT = {store.uri!r}, {str(tmp_path / 'cache')!r}, {str(tmp_path / 'g.png')!r}\n"
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER + paths + RUN_CONSUMER], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "g.png").stat().st_size > 0


def test_the_blocker_blocks():
    proc = subprocess.run([sys.executable, "-c", BLOCKER + "import torch"], capture_output=True, text=True)
    assert proc.returncode != 0 and "blocked in this test: torch" in proc.stderr


def test_consumer_service_imports_no_heavy_frameworks():
    _run(f"sys.path.insert(0, {str(DEPLOY)!r}); import service")


def test_the_check_itself_can_fail():
    proc = subprocess.run(
        [sys.executable, "-c", CHECK.format(imports="import torch")], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "torch" in proc.stderr
