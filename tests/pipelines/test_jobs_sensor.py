"""The new-raw-data sensor: the first tick records the source's listing; new files launch `retrain` once the
listing holds still for a tick (so an upload in progress is not trained on)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import yaml
from PIL import Image
from s3_server import fake_aws_env, moto_server

from pipelines.jobs import new_raw_data_sensor
from pipelines.resources import Workspace


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 16), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _workspace(root: Path, source: str) -> Workspace:
    """Only params.yaml matters to the sensor: it names the source."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump({"ingest": {"name": "faces", "source": source}}))
    return Workspace(root=str(root))


def _tick(workspace: Workspace, cursor: str | None):
    context = dg.build_sensor_context(cursor=cursor, resources={"workspace": workspace})
    return new_raw_data_sensor.evaluate_tick(context)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An image-folder source: one sub-folder per class."""
    src = tmp_path / "incoming"
    for i, cls in enumerate(["cat", "cat", "dog"]):
        _png(src / cls / f"{i}.png", i)
    return src


def test_first_tick_records_the_listing_and_skips(tmp_path, folder):
    result = _tick(_workspace(tmp_path / "ws", str(folder)), cursor=None)
    assert result.run_requests == []
    assert "recorded 3 files" in result.skip_message
    assert json.loads(result.cursor)["count"] == 3


def test_unchanged_source_skips(tmp_path, folder):
    ws = _workspace(tmp_path / "ws", str(folder))
    first = _tick(ws, None)
    second = _tick(ws, first.cursor)
    assert second.run_requests == []
    assert "no new files" in second.skip_message
    assert second.cursor == first.cursor


def test_a_new_file_launches_retrain_once_the_listing_holds_still(tmp_path, folder):
    ws = _workspace(tmp_path / "ws", str(folder))
    cursor = _tick(ws, None).cursor
    _png(folder / "dog" / "new.png", 99)

    noticed = _tick(ws, cursor)  # files may still be arriving: wait one tick
    assert noticed.run_requests == []
    assert "3 -> 4 files" in noticed.skip_message

    result = _tick(ws, noticed.cursor)  # unchanged since: launch
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.job_name in (None, "retrain")
    assert {k: request.tags[k] for k in ("trigger", "files", "files_before")} == {
        "trigger": "new_raw_data",
        "files": "4",
        "files_before": "3",
    }
    assert request.run_key == json.loads(result.cursor)["digest"]  # the same listing never runs twice

    after = _tick(ws, result.cursor)
    assert after.run_requests == [] and "no new files" in after.skip_message


def test_an_upload_in_progress_postpones_the_launch(tmp_path, folder):
    ws = _workspace(tmp_path / "ws", str(folder))
    cursor = _tick(ws, None).cursor
    _png(folder / "dog" / "a.png", 1)
    cursor = _tick(ws, cursor).cursor
    _png(folder / "dog" / "b.png", 2)  # still uploading at the next tick
    still_moving = _tick(ws, cursor)
    assert still_moving.run_requests == []
    settled = _tick(ws, still_moving.cursor)
    assert [r.tags["files"] for r in settled.run_requests] == ["5"]


def _settle(ws: Workspace, cursor: str | None):
    """Two ticks: the one that notices a change, and the one that launches if nothing moved since."""
    return _tick(ws, _tick(ws, cursor).cursor)


def test_a_rewritten_file_counts_as_new_data(tmp_path, folder):
    ws = _workspace(tmp_path / "ws", str(folder))
    cursor = _tick(ws, None).cursor
    target = folder / "cat" / "0.png"
    _png(target, 1234)  # same name, other pixels
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    assert len(_settle(ws, cursor).run_requests) == 1


def test_hidden_files_are_ignored_like_ingest_does(tmp_path, folder):
    ws = _workspace(tmp_path / "ws", str(folder))
    cursor = _tick(ws, None).cursor
    (folder / "cat" / ".DS_Store").write_bytes(b"finder junk")
    assert "no new files" in _tick(ws, cursor).skip_message


def test_relative_source_resolves_against_the_workspace(tmp_path):
    ws_root = tmp_path / "ws"
    _png(ws_root / "incoming" / "a" / "0.png", 0)
    ws = _workspace(ws_root, "incoming")
    assert "recorded 1 files" in _tick(ws, None).skip_message


def test_cursor_from_an_older_version_is_read(tmp_path, folder):
    """Before the JSON cursor, it held the bare digest: an unchanged source must still skip."""
    ws = _workspace(tmp_path / "ws", str(folder))
    digest = json.loads(_tick(ws, None).cursor)["digest"]
    assert "no new files" in _tick(ws, digest).skip_message


def test_packaged_dataset_never_triggers(tmp_path):
    ws = _workspace(tmp_path / "ws", "digits")
    first = _tick(ws, None)
    assert "no new files" in _settle(ws, first.cursor).skip_message


def test_new_object_under_an_s3_prefix_launches_retrain(tmp_path, monkeypatch):
    import boto3

    fake_aws_env(monkeypatch)
    with moto_server() as endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="raw")
        s3.put_object(Bucket="raw", Key="faces/cat/0.png", Body=b"0")
        s3.put_object(Bucket="raw", Key="other/ignored.png", Body=b"x")  # outside the prefix
        ws = _workspace(tmp_path / "ws", "s3://raw/faces")

        first = _tick(ws, None)
        assert "recorded 1 files" in first.skip_message
        s3.put_object(Bucket="raw", Key="other/also-ignored.png", Body=b"y")
        assert "no new files" in _tick(ws, first.cursor).skip_message
        s3.put_object(Bucket="raw", Key="faces/dog/1.png", Body=b"1")
        result = _settle(ws, first.cursor)
    assert len(result.run_requests) == 1
    assert result.run_requests[0].tags["files"] == "2"


def test_sensor_targets_retrain_and_starts_stopped():
    assert new_raw_data_sensor.job_name == "retrain"
    assert new_raw_data_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert new_raw_data_sensor.minimum_interval_seconds == 300
