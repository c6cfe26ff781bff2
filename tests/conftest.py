"""Shared test set-up: tests never write into the checkout; they work in temp dirs.

The fixtures here serve more than one test folder: two exported generators and the object-store backends
(the ganlib store/serving tests and the deploy consumer's). Tests that talk to a store take ``aws_env``
(fake credentials, never the developer's) with ``pytestmark = pytest.mark.usefixtures("aws_env")``.
"""

from __future__ import annotations

import os
import uuid

import pytest

# Torch on 2 cores: keep intra-op threads at the core count so parallel helpers don't oversubscribe.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> dict:
    """{"cond": (generator, ExportInfo), "uncond": (...)}: two real exports shared by the whole session."""
    from model_helpers import EXPORT_METADATA, spread_generator

    from ganlib.export import export_onnx

    out = {}
    for name, num_classes in (("cond", 10), ("uncond", 0)):
        g = spread_generator(num_classes, seed=num_classes)
        path = tmp_path_factory.mktemp(f"export-{name}") / "generator.onnx"
        out[name] = g, export_onnx(g, path, metadata=EXPORT_METADATA)
    return out


@pytest.fixture(scope="session")
def onnx_models(exports) -> dict:
    """{"cond": ExportInfo, "uncond": ExportInfo}."""
    return {name: info for name, (_, info) in exports.items()}


@pytest.fixture(scope="session")
def s3_endpoint():
    from s3_server import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(monkeypatch) -> None:
    from s3_server import fake_aws_env

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
    from ganlib.store import open_store

    return open_store(store_uri)


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"
