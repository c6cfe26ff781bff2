"""deploy/bootstrap.py: the workspace, its DVC remote and the buckets, set up once and then left alone."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
from s3_server import fake_aws_env, moto_server

from pipelines.resources import REPO_ROOT


@pytest.fixture(scope="module")
def bootstrap() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_bootstrap", REPO_ROOT / "deploy" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_buckets_named_by_the_uris(bootstrap):
    uris = ("s3://models/gan", "/local/dir", None, "s3://dvc/cache", "s3://models/other")
    assert bootstrap.s3_buckets(*uris) == ["dvc", "models"]


def test_workspace_is_created_once_and_then_left_alone(bootstrap, tmp_path):
    ws = tmp_path / "ws"
    assert bootstrap.ensure_workspace(ws) is True
    assert (ws / ".git").is_dir() and (ws / ".dvc").is_dir() and (ws / "dvc.yaml").is_file()
    (ws / "params.yaml").write_text("ingest: {source: /data/faces}\n")  # an operator's edit
    assert bootstrap.ensure_workspace(ws) is False
    assert "/data/faces" in (ws / "params.yaml").read_text()


def test_dvc_remote_points_at_the_bucket_and_endpoint(bootstrap, tmp_path):
    ws = tmp_path / "ws"
    bootstrap.ensure_workspace(ws)
    bootstrap.ensure_dvc_remote(ws, "s3://gan-dvc/cache", "http://s3:8333")
    bootstrap.ensure_dvc_remote(ws, "s3://gan-dvc/cache", "http://s3:8333")  # again: no error, no duplicate
    config = (ws / ".dvc" / "config").read_text()
    assert "remote = storage" in config
    assert config.count("url = s3://gan-dvc/cache") == 1
    assert "endpointurl = http://s3:8333" in config


def test_missing_buckets_are_created_and_existing_ones_kept(bootstrap, monkeypatch):
    import uuid

    import boto3

    fake_aws_env(monkeypatch)
    # moto keeps one in-process backend for every server in this process: use names no other test uses.
    dvc_bucket, models_bucket = f"gan-dvc-{uuid.uuid4().hex[:8]}", f"gan-models-{uuid.uuid4().hex[:8]}"
    with moto_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        before = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        s3.create_bucket(Bucket=models_bucket)
        s3.put_object(Bucket=models_bucket, Key="keep.txt", Body=b"x")
        assert bootstrap.ensure_buckets([dvc_bucket, models_bucket], endpoint) == [dvc_bucket]
        assert bootstrap.ensure_buckets([dvc_bucket, models_bucket], endpoint) == []
        names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
        kept = s3.get_object(Bucket=models_bucket, Key="keep.txt")["Body"].read()
    assert names - before == {dvc_bucket, models_bucket} and kept == b"x"
