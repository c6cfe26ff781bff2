"""The s3:// source against a real S3-protocol server on loopback (moto's server mode)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import boto3
import pandas as pd
import pytest
from data_helpers import noise, png_bytes, raw_files
from s3_server import fake_aws_env, moto_server

from ganlib.data.sources import IngestError, ingest_source


@pytest.fixture
def s3(monkeypatch):
    fake_aws_env(monkeypatch)
    with moto_server() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="images")
        yield endpoint, client


def test_prefix_is_downloaded_validated_and_ingested(s3, tmp_path: Path) -> None:
    endpoint, client = s3
    uploaded = {}
    for i, label in enumerate(["cat", "cat", "cat", "dog", "dog", "dog"]):
        data = png_bytes(noise(i))
        uploaded[f"{label}/{i}.png"] = data
        client.put_object(Bucket="images", Key=f"sets/toy/{label}/{i}.png", Body=data)
    client.put_object(Bucket="images", Key="sets/toy/dog/", Body=b"")  # a console "folder" marker
    client.put_object(Bucket="images", Key="sets/toy/dog/broken.png", Body=b"\x89PNG\r\n\x1a\n broken")
    client.put_object(Bucket="images", Key="sets/toy2/cat/other.png", Body=png_bytes(noise(9)))  # not ours

    raw = tmp_path / "raw" / "toy"
    report = ingest_source("s3://images/sets/toy", raw, endpoint_url=endpoint, max_reject_fraction=0.2)

    assert (report.accepted, report.rejected) == (6, 1)
    assert report.rejects[0]["file"] == "dog/broken.png"
    manifest = pd.read_parquet(raw / "manifest.parquet").set_index("file")
    assert set(manifest.index) == set(uploaded)
    assert raw_files(raw) == uploaded
    for key, data in uploaded.items():
        assert manifest.at[key, "sha256"] == hashlib.sha256(data).hexdigest()
    assert not raw.with_name("toy.download").exists()  # the download area is cleaned up


def test_empty_prefix_is_a_clear_error(s3, tmp_path: Path) -> None:
    endpoint, _ = s3
    with pytest.raises(IngestError, match=r"no objects under s3://images/nothing-here"):
        ingest_source("s3://images/nothing-here", tmp_path / "raw" / "x", endpoint_url=endpoint)
    assert not (tmp_path / "raw" / "x").exists()
