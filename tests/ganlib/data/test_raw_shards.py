"""The raw layout: DVC tracks a handful of checksummed tar shards instead of one entry per image, a shard
damaged on disk stops the preprocess stage with one line naming it, and the preprocess output equals an
independent PIL computation from the source files, however the raw data is sharded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml
from data_helpers import data_workspace, image_folder, raw_files, reference_pixels, set_params
from PIL import Image

from ganlib.data import parallel
from ganlib.data.parallel import MIN_PARALLEL_ITEMS
from ganlib.data.preprocess import preprocess
from ganlib.data.raw_shards import ShardError
from ganlib.data.shards import load_split
from ganlib.data.sources import ingest_folder
from pipelines.assets.data import processed_dataset, raw_images
from pipelines.definitions import build_resources

TABLES = {"manifest.parquet", "rejects.parquet", "skipped.parquet", "shards.json"}


def _source_bytes(src: Path) -> dict[str, bytes]:
    return {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_dvc_tracks_shards_not_files(tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", classes=("a", "b", "c"), per_class=7)  # 21 images
    ws = data_workspace(tmp_path / "ws", src, resolution=8)
    set_params(ws, ingest={"images_per_shard": 4})
    result = dg.materialize([raw_images], resources=build_resources(ws, str(tmp_path / "store")))
    assert result.success

    raw = ws / "data" / "raw" / "toy"
    shards = [f"shards/raw-{i:05d}.tar" for i in range(6)]  # ceil(21 / 4)
    out = yaml.safe_load((ws / "data" / "raw" / "toy.dvc").read_text())["outs"][0]
    assert out["nfiles"] == len(shards) + len(TABLES)
    # DVC's directory listing in its cache: one entry per shard and table, not one per image.
    md5 = out["md5"].removesuffix(".dir")
    listing = json.loads((ws / ".dvc" / "cache" / "files" / "md5" / md5[:2] / f"{md5[2:]}.dir").read_text())
    assert {e["relpath"] for e in listing} == set(shards) | TABLES
    for e in listing:
        assert e["md5"] == hashlib.md5((raw / e["relpath"]).read_bytes()).hexdigest()
    # The shards hold exactly the source files' bytes, each file once, 4 to a shard in name order.
    assert raw_files(raw) == _source_bytes(src)
    index = json.loads((raw / "shards.json").read_text())["shards"]
    assert [s["file"] for s in index] == shards and [s["images"] for s in index] == [4] * 5 + [1]
    for s in index:
        assert s["sha256"] == hashlib.sha256((raw / s["file"]).read_bytes()).hexdigest()


def _damage(shard: Path) -> None:
    """Flip one byte in the middle of the shard, keeping its size (as bit rot would)."""
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0xFF
    shard.write_bytes(bytes(data))


def test_damaged_or_truncated_shard_is_one_clear_line(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "processed"
    ingest_folder(image_folder(tmp_path / "src", per_class=6), raw, images_per_shard=4)
    params = {"resolution": 8, "channels": 1, "val_fraction": 0.25, "split_seed": 0, "background": 0}
    _damage(raw / "shards" / "raw-00001.tar")
    with pytest.raises(ShardError) as err:
        preprocess(raw, out, params)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"raw shard {raw / 'shards' / 'raw-00001.tar'} is damaged: sha256 ")
    assert msg.endswith("or ingest again (materialize raw_images)")
    assert not out.exists()  # nothing half-written in its place

    ingest_folder(image_folder(tmp_path / "src", per_class=6), raw, images_per_shard=4)  # whole again
    preprocess(raw, out, params)
    shard = raw / "shards" / "raw-00002.tar"
    shard.write_bytes(shard.read_bytes()[:100])  # cut short
    with pytest.raises(ShardError, match=r"raw-00002\.tar is damaged: 100 bytes, shards\.json records \d+"):
        preprocess(raw, out, params)
    shard.unlink()
    with pytest.raises(ShardError, match=r"raw-00002\.tar cannot be read \(No such file or directory\)"):
        preprocess(raw, out, params)


@pytest.mark.slow
def test_damaged_shard_fails_the_asset_with_that_line(tmp_path: Path) -> None:
    ws = data_workspace(tmp_path / "ws", image_folder(tmp_path / "src", per_class=6), resolution=8)
    set_params(ws, ingest={"images_per_shard": 4})
    resources = build_resources(ws, str(tmp_path / "store"))
    assert dg.materialize([raw_images, processed_dataset], resources=resources).success

    _damage(ws / "data" / "raw" / "toy" / "shards" / "raw-00000.tar")
    failed = dg.materialize([processed_dataset], resources=resources, raise_on_error=False)
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message.strip()
    assert "\n" not in message, message
    assert message.removeprefix("dagster._core.definitions.events.Failure: ").startswith(
        "`dvc repro preprocess` failed: raw shard data/raw/toy/shards/raw-00000.tar is damaged: sha256 "
    )
    assert "`dvc checkout data/raw/toy`" in message


# --- preprocess against an independent reference ------------------------------------------------------

BACKGROUND = [30, 200, 90]


def _varied_folder(src: Path, per_class: int) -> None:
    """Images of every accepted kind: RGB, L, 1-bit, RGBA, LA, palette with a transparent index, JPEG;
    square and not, larger and smaller than the target; a nested folder, a long and a non-ASCII name."""
    rng = np.random.default_rng(7)
    for c in ("cat", "dog", "emu"):
        (src / c / "deep").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = (int(v) for v in rng.integers(4, 30, 2))
            kind = i % 7
            pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
            name = src / c / ("deep" if i % 5 == 0 else "") / f"{i:04d}.png"
            if kind == 0:
                Image.fromarray(pixels[..., :3]).save(name)
            elif kind == 1:
                Image.fromarray(pixels[..., 0]).save(name)
            elif kind == 2:
                Image.fromarray(pixels[..., 0] > 127).save(name)
            elif kind == 3:
                Image.fromarray(pixels, "RGBA").save(name)
            elif kind == 4:
                Image.fromarray(pixels[..., :2], "LA").save(name)
            elif kind == 5:
                Image.fromarray(pixels[..., 0] % 8, "L").convert("P").save(name, transparency=2)
            else:
                Image.fromarray(pixels[..., :3]).save(name.with_suffix(".jpg"), quality=90)
    long_name = src / "dog" / ("x" * 120 + ".png")  # over ustar's 100 bytes: a PAX header
    Image.fromarray(np.full((9, 13, 3), 200, np.uint8)).save(long_name)
    Image.fromarray(np.full((10, 10), 60, np.uint8)).save(src / "emu" / "ünïcødé.png")


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("resolution", "channels"), [(12, 3), (8, 1)])
def test_preprocess_equals_an_independent_reference(
    tmp_path: Path, resolution: int, channels: int, monkeypatch
) -> None:
    src = tmp_path / "src"
    _varied_folder(src, per_class=180)  # 542 images: over MIN_PARALLEL_ITEMS, so the workers run
    files = _source_bytes(src)
    assert len(files) >= MIN_PARALLEL_ITEMS
    pools: list[str] = []  # the worker pools started by ingestion and preprocessing
    real_context = parallel.mp.get_context
    monkeypatch.setattr(
        parallel.mp, "get_context", lambda method: pools.append(method) or real_context(method)
    )
    params = {
        "resolution": resolution,
        "channels": channels,
        "val_fraction": 0.2,
        "split_seed": 3,
        "background": BACKGROUND,
    }
    ingest_folder(src, tmp_path / "raw", images_per_shard=50)  # 11 shards, one task each
    meta = preprocess(tmp_path / "raw", tmp_path / "out", params)
    assert pools == ([] if parallel.available_cpus() < 2 else ["forkserver", "forkserver"])

    index = pd.read_parquet(tmp_path / "out" / "index.parquet")
    assert sorted(index["file"]) == sorted(files)
    assert meta["class_names"] == ["cat", "dog", "emu"]
    for split in ("train", "val"):
        rows = index[index["split"] == split]
        assert list(rows["file"]) == sorted(rows["file"])  # name order within a split
        data = load_split(tmp_path / "out", split)
        assert len(data) == len(rows) == meta["counts"][split]
        expected = np.stack(
            [reference_pixels(src / f, resolution, channels, BACKGROUND) for f in rows["file"]]
        )
        np.testing.assert_array_equal(np.asarray(data.images), expected)
        classes = [meta["class_names"].index(f.split("/")[0]) for f in rows["file"]]
        assert data.labels.tolist() == rows["label"].tolist() == classes
        assert list(rows["sha256"]) == [hashlib.sha256(files[f]).hexdigest() for f in rows["file"]]
    # The split is stratified: each class gives round(20%) of its images to val.
    for c in meta["class_names"]:
        n = sum(f.startswith(c + "/") for f in files)
        assert (index[index["split"] == "val"]["file"].str.startswith(c + "/")).sum() == round(n * 0.2)

    # One shard or eleven, in this process or across workers: the same bytes out.
    ingest_folder(src, tmp_path / "raw1", images_per_shard=10_000)
    preprocess(tmp_path / "raw1", tmp_path / "out1", params, workers=1)
    assert _tree(tmp_path / "out1") == _tree(tmp_path / "out")
