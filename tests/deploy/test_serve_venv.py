"""A downstream service's install: a fresh venv with only the `serve` extra pulls a published model from a
loopback S3 server, verifies it and writes a grid with gan-generate, without torch anywhere in it.

The project wheel is built from a clean copy of the sources (nothing is written into the checkout) and
installed as ``"<wheel>[serve]"`` under the pinned constraints, so the test exercises the real extra's
metadata. The venv is created ``--without-pip`` and filled by this venv's pip (``pip --python``): the
same resolution as ``python -m venv && pip install``, without paying for ensurepip on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image
from s3_server import FAKE_ENV, UNSET_ENV, fake_aws_env, moto_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NEUTRAL_CWD = Path(__file__).resolve().parent  # holds no importable package
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
HEAVY = ("torch", "torchvision", "dagster", "dvc", "pydantic", "PyYAML", "onnx", "scipy")
SERVE = ("gan-workflow", "numpy", "onnxruntime", "boto3", "pillow")
INSTALLED = (
    "import importlib.metadata as md, json, sys;"
    "names = sys.argv[1:]; found = {}\n"
    "for n in names:\n"
    "    try: found[n] = md.version(n)\n"
    "    except md.PackageNotFoundError: pass\n"
    "print(json.dumps(found))"
)


def _run(
    cmd: list[str], env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    # Not from the checkout: `python -c` puts the working directory on sys.path, which would shadow the
    # installed package with the repository's ganlib/.
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=NEUTRAL_CWD)


def _build_wheel(dest: Path) -> Path:
    """The project wheel, from a copy of what packaging reads (pyproject, README, the packages)."""
    src = dest / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for pkg in ("ganlib", "pipelines"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    proc = _run([*pip_wheel, "-w", str(dest), str(src)])
    assert proc.returncode == 0, proc.stderr
    (wheel,) = dest.glob("gan_workflow-*.whl")
    return wheel


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory) -> Path:
    """The python of a fresh venv holding only ``gan-workflow[serve]``."""
    root = tmp_path_factory.mktemp("serve-venv")
    start = time.monotonic()
    wheel = _build_wheel(root / "dist")
    built = time.monotonic()
    venv = root / "venv"
    proc = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert proc.returncode == 0, proc.stderr
    python = venv / "bin" / "python"
    cmd = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "-c", str(CONSTRAINTS)]
    proc = _run([*cmd, f"{wheel}[serve]"], timeout=600)
    assert proc.returncode == 0, proc.stderr
    done = time.monotonic()
    print(f"\nserve venv: wheel {built - start:.1f} s, venv + install {done - built:.1f} s")
    return python


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """(store URI, endpoint, manifest): a small exported generator published to a loopback S3 bucket."""
    import boto3
    import torch

    from ganlib.export import export_onnx
    from ganlib.models import ModelSpec, build_generator
    from ganlib.store import open_store, publish

    torch.manual_seed(0)
    g = build_generator(ModelSpec("dcgan", 16, 1, 8, 10, 8, 8)).eval()
    from model_helpers import EXPORT_METADATA as meta

    info = export_onnx(g, tmp_path_factory.mktemp("onnx") / "generator.onnx", metadata=meta)
    with pytest.MonkeyPatch.context() as mp, moto_server() as endpoint:
        fake_aws_env(mp)
        bucket = f"models-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        uri = f"s3://{bucket}/gan"
        fields = {
            **info.manifest_fields(),
            "fid": {"value": 12.5, "backbone": "domain:d474"},
            "data_hash": "d474",
        }
        res = publish(open_store(uri, endpoint_url=endpoint), "digits", "v1", info.path, fields)
        yield uri, endpoint, res


def _service_env(endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET_ENV and not k.startswith("PYTHON")}
    return {**env, **FAKE_ENV, "AWS_ENDPOINT_URL_S3": endpoint}


def test_serve_extra_has_no_torch(serve_venv):
    proc = _run([str(serve_venv), "-c", INSTALLED, *HEAVY, *SERVE])
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert set(SERVE) <= set(found), found
    assert not set(HEAVY) & set(found), f"the serve extra pulled in {sorted(set(HEAVY) & set(found))}"
    shown = _run([sys.executable, "-m", "pip", "--python", str(serve_venv), "show", "torch"])
    assert shown.returncode != 0  # pip itself agrees: no torch distribution in that venv
    imported = _run([str(serve_venv), "-c", "import torch"])
    assert imported.returncode != 0 and "No module named 'torch'" in imported.stderr
    # The consumer modules import there, from the installed wheel (not from the checkout).
    code = "import ganlib, ganlib.serving, ganlib.serving_cli; print(ganlib.__file__)"
    proc = _run([str(serve_venv), "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).is_relative_to(serve_venv.parents[1])


def test_pull_verify_and_generate_in_the_serve_venv(serve_venv, published, tmp_path):
    uri, endpoint, res = published
    out, cache = tmp_path / "grid.png", tmp_path / "cache"
    cli = serve_venv.with_name("gan-generate")  # the console script the extra's install created
    cmd = [str(cli), "--uri", uri, "--model", "digits", "--n", "6", "--seed", "0", "--device", "cpu"]
    proc = _run([*cmd, "--cache-dir", str(cache), "--out", str(out)], env=_service_env(endpoint))
    assert proc.returncode == 0, proc.stderr
    assert f"version=v1 sha256={res.sha256}" in proc.stdout and "provider=CPUExecutionProvider" in proc.stdout
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (3 * 18 + 2, 2 * 18 + 2)  # 6 tiles of 16 px, 3 per row
    # The cached model is the published bytes (checked here with hashlib, independently of ganlib).
    (cached,) = cache.rglob("generator.onnx")
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == res.sha256


def test_serve_venv_refuses_a_tampered_model(serve_venv, published, tmp_path, monkeypatch):
    uri, endpoint, _ = published
    import boto3

    fake_aws_env(monkeypatch)
    bucket, key = uri.removeprefix("s3://").split("/")[0], "gan/digits/v1/generator.onnx"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=bucket, Key=key, Body=b"not the published bytes")
    try:
        cmd = [str(serve_venv.with_name("gan-generate")), "--uri", uri, "--model", "digits"]
        cmd += ["--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "g.png")]
        proc = _run(cmd, env=_service_env(endpoint))
        assert proc.returncode == 1 and "sha256" in proc.stderr
        assert not (tmp_path / "g.png").exists() and not list((tmp_path / "cache").rglob("generator.onnx"))
    finally:
        s3.put_object(Bucket=bucket, Key=key, Body=original)  # other tests share the published model
