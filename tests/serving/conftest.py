"""Fixtures for store/serving tests: a loopback S3 server (moto), both store backends, exported models."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared s3_server helper
from s3_server import fake_aws_env, moto_server
from serving_helpers import MODEL_METADATA, make_generator

from ganlib.store import open_store


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory):
    """{"cond": ExportInfo, "uncond": ExportInfo}: two real exports shared by the whole session."""
    from ganlib.export import export_onnx

    out = tmp_path_factory.mktemp("onnx")
    return {
        name: export_onnx(make_generator(nc, seed=nc), out / name / "generator.onnx", metadata=MODEL_METADATA)
        for name, nc in (("cond", 10), ("uncond", 0))
    }


@pytest.fixture(scope="session")
def s3_endpoint():
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch):
    fake_aws_env(monkeypatch)


@pytest.fixture(params=["local", "s3"])
def store_uri(request, tmp_path, monkeypatch):
    """The same test against a directory and against a fresh bucket on the loopback S3 server."""
    if request.param == "local":
        return (tmp_path / "store").as_uri()
    endpoint = request.getfixturevalue("s3_endpoint")
    import boto3

    bucket = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # how open_store finds a non-AWS endpoint
    return f"s3://{bucket}/gan/models"


@pytest.fixture
def store(store_uri):
    return open_store(store_uri)


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
