"""gan-generate as a user runs it: a subprocess against a local store, writing a PNG grid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
from model_helpers import manifest_fields
from PIL import Image

from ganlib.store import LocalStore, publish

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's


@pytest.fixture
def published(tmp_path, onnx_models):
    store = LocalStore(tmp_path / "store")
    info = onnx_models["cond"]
    return store, publish(store, "digits", "v1", info.path, manifest_fields(info))


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("gan-generate")  # the installed console script
    return [str(script)] if script.exists() else [sys.executable, "-m", "ganlib.serving_cli"]


def test_cli_writes_a_png_grid(published, tmp_path):
    store, res = published
    out = tmp_path / "out" / "grid.png"
    cmd = [*_cli(), "--uri", store.uri, "--model", "digits", "--n", "6", "--seed", "1", "--out", str(out)]
    cmd += ["--device", "cpu", "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "provider=CPUExecutionProvider" in proc.stdout
    assert "version=v1" in proc.stdout and f"sha256={res.sha256}" in proc.stdout
    with Image.open(out) as img:
        # 6 images of 32x32, 3 per row (ceil(sqrt(6))), 2 px padding: 2 rows x 3 columns.
        assert img.format == "PNG" and img.mode == "L"
        assert img.size == (3 * 34 + 2, 2 * 34 + 2)


def test_cli_reports_store_errors(tmp_path):
    out = tmp_path / "grid.png"
    cmd = [*_cli(), "--uri", str(tmp_path / "empty"), "--model", "digits", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "no published version of 'digits'" in proc.stderr
    assert not out.exists()


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort.get_available_providers(), reason="this machine has CUDA EP"
)
def test_cli_refuses_cuda_without_a_gpu(published, tmp_path):
    store, _ = published
    out = tmp_path / "grid.png"
    cmd = [*_cli(), "--uri", store.uri, "--model", "digits", "--device", "cuda", "--out", str(out)]
    cmd += ["--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "GPU was demanded" in proc.stderr
    assert not out.exists()
