"""DVC remotes: what the pipeline pushes, a fresh `git clone` + `dvc pull` restores byte for byte."""

from __future__ import annotations

from pathlib import Path

import boto3
import dagster as dg
import pytest
from data_helpers import commit_all, data_workspace, file_hashes, git, image_folder
from s3_server import fake_aws_env, moto_server

from ganlib.data.sources import ingest_folder
from pipelines import dvc
from pipelines.assets.data import processed_dataset, raw_images
from pipelines.definitions import build_resources

pytestmark = pytest.mark.slow

DATA = ("data/raw/toy", "data/processed")


def _clone_and_pull(ws: Path, dest: Path) -> Path:
    """Only what git holds travels: the clone gets its data from the remote alone."""
    commit_all(ws)
    git(ws.parent, "clone", "-q", str(ws), str(dest))
    assert not any((dest / d).exists() for d in DATA)
    dvc.pull(dest)
    return dest


def _assert_same_data(a: Path, b: Path) -> None:
    for d in DATA:
        hashes = file_hashes(a / d)
        assert hashes and file_hashes(b / d) == hashes, d


def test_asset_pushes_to_a_local_remote_and_a_clone_pulls_identical_bytes(tmp_path: Path) -> None:
    ws = data_workspace(tmp_path / "ws", image_folder(tmp_path / "src", per_class=5), resolution=8)
    remote = tmp_path / "remote"
    dvc.dvc(ws, "remote", "add", "-d", "storage", str(remote))

    result = dg.materialize(
        [raw_images, processed_dataset],
        resources=build_resources(ws, str(tmp_path / "store")),
        instance=dg.DagsterInstance.ephemeral(),
    )
    (mat,) = result.asset_materializations_for_node("processed_dataset")
    assert mat.metadata["pushed_to_remote"].value is True
    assert mat.metadata["dvc_remote"].value == "storage"
    assert any(p.is_file() for p in remote.rglob("*"))

    clone = _clone_and_pull(ws, tmp_path / "clone")
    _assert_same_data(ws, clone)


def test_s3_remote_with_endpointurl_round_trips(tmp_path: Path, monkeypatch) -> None:
    fake_aws_env(monkeypatch)  # DVC (a subprocess) takes the credentials from the env, like boto3
    # DVC's aiobotocore refuses /dev/null as a config file (botocore accepts it): empty files instead.
    for var in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        empty = tmp_path / var.lower()
        empty.write_text("")
        monkeypatch.setenv(var, str(empty))
    with moto_server() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="dvc-data")
        ws = data_workspace(tmp_path / "ws", tmp_path / "src", resolution=8)
        dvc.dvc(ws, "remote", "add", "-d", "storage", "s3://dvc-data/gan")
        dvc.dvc(ws, "remote", "modify", "storage", "endpointurl", endpoint)
        assert dvc.default_remote(ws) == "storage"

        ingest_folder(image_folder(tmp_path / "src", per_class=5), ws / "data" / "raw" / "toy")
        dvc.add(ws, "data/raw/toy")
        dvc.repro(ws, "preprocess")
        dvc.push(ws)
        keys = [
            o["Key"]
            for o in boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(
                Bucket="dvc-data", Prefix="gan/"
            )["Contents"]
        ]
        assert len(keys) > 10  # raw shards and tables, processed shards, the directory listings

        clone = _clone_and_pull(ws, tmp_path / "clone")
        _assert_same_data(ws, clone)
