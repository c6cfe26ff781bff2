"""Image-folder ingestion: corrupt and odd files are rejected with a reason, the threshold decides the run,
and a failed or interrupted ingest never touches the previous raw data."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_helpers import file_hashes, image_folder, png_bytes, raw_files, write_corrupt_files
from PIL import Image

from ganlib.data import sources
from ganlib.data.sources import IngestError, ingest_folder
from ganlib.data.validate import reject_reason


def _reasons(table: pd.DataFrame) -> dict[str, str]:
    return dict(zip(table["file"], table["reason"], strict=True))


def _assert_reasons(found: dict[str, str], expected: dict[str, str]) -> None:
    assert set(found) == set(expected)
    for file, word in expected.items():
        assert word.lower() in found[file].lower(), (file, found[file])


def test_over_threshold_fails_lists_every_reject_and_keeps_previous_data(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "toy"
    ingest_folder(image_folder(tmp_path / "v1", seed=1), raw)
    before = file_hashes(raw)

    src = image_folder(tmp_path / "v2", per_class=3, seed=2)  # 6 good files
    expected = write_corrupt_files(src / "bad")  # 4 bad ones: 40% rejected
    with pytest.raises(IngestError) as err:
        ingest_folder(src, raw, max_reject_fraction=0.25)

    message = str(err.value)
    assert "4 of 10 files" in message and "previous raw data is kept" in message
    for file in expected:
        assert file in message  # the error itself names each rejected file
    rejects = pd.read_parquet(raw.with_name("toy.partial") / "rejects.parquet")
    _assert_reasons(_reasons(rejects), expected)
    assert file_hashes(raw) == before


def test_under_threshold_succeeds_with_rejects_listed(tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", per_class=8)  # 16 good files
    expected = write_corrupt_files(src / "bad")  # 4 bad: 20%, allowed
    raw = tmp_path / "raw" / "toy"
    report = ingest_folder(src, raw, max_reject_fraction=0.2)

    assert (report.accepted, report.rejected) == (16, 4)
    assert report.classes == {"a": 8, "b": 8}
    _assert_reasons({r["file"]: r["reason"] for r in report.rejects}, expected)
    _assert_reasons(_reasons(pd.read_parquet(raw / "rejects.parquet")), expected)

    # The manifest lists exactly the accepted files, with the bytes' own hash, size and shape.
    manifest = pd.read_parquet(raw / "manifest.parquet").set_index("file")
    images = raw_files(raw)
    assert set(manifest.index) == set(images)
    assert not any(name.startswith("bad/") for name in images)
    for file, row in manifest.iterrows():
        data = images[file]
        assert row["sha256"] == hashlib.sha256(data).hexdigest()
        assert row["size"] == len(data) and row["label"] == file.split("/")[0]
        assert (row["height"], row["width"], row["channels"], row["mode"]) == (12, 12, 1, "L")
        assert data == (src / file).read_bytes()


def test_same_file_names_in_nested_folders_do_not_collide(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for sub, seed in (("x", 1), ("y", 2)):
        (src / "cat" / sub).mkdir(parents=True)
        (src / "cat" / sub / "1.png").write_bytes(png_bytes(np.full((8, 8), seed * 50, np.uint8)))
    (src / "top.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))  # no class folder
    (src / ".ipynb_checkpoints").mkdir()
    (src / ".ipynb_checkpoints" / "junk.txt").write_text("hidden: not part of the data")

    report = ingest_folder(src, tmp_path / "raw")
    assert report.rejected == 0
    assert set(pd.read_parquet(tmp_path / "raw" / "manifest.parquet")["file"]) == {
        "cat/x/1.png",
        "cat/y/1.png",
        "_unlabelled/top.png",
    }
    images = raw_files(tmp_path / "raw")
    assert images["cat/x/1.png"] == (src / "cat/x/1.png").read_bytes() != images["cat/y/1.png"]


@pytest.mark.parametrize(
    ("mode", "ok"),
    [("L", True), ("RGB", True), ("RGBA", True), ("P", True), ("I;16", False), ("CMYK", False)],
)
def test_modes(mode: str, ok: bool) -> None:
    buf = io.BytesIO()
    Image.new(mode, (8, 8)).save(buf, format="JPEG" if mode == "CMYK" else "PNG")
    info, reason = reject_reason("x.jpg" if mode == "CMYK" else "x.png", buf.getvalue())
    assert (info is not None) == ok, reason
    if not ok:
        assert f"mode {mode}" in reason


def test_reject_reasons_are_reproducible(tmp_path: Path) -> None:
    """The rejects table is versioned with the data: the same files must give byte-identical tables."""
    src = image_folder(tmp_path / "src", per_class=8)
    write_corrupt_files(src / "bad")
    ingest_folder(src, tmp_path / "r1", max_reject_fraction=0.5)
    ingest_folder(src, tmp_path / "r2", max_reject_fraction=0.5)
    assert file_hashes(tmp_path / "r1") == file_hashes(tmp_path / "r2")


def test_interrupted_ingest_keeps_previous_raw_data(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw" / "toy"
    ingest_folder(image_folder(tmp_path / "v1", seed=1), raw)
    before = file_hashes(raw)

    calls = {"n": 0}
    real = sources.reject_reason

    def dies_on_third(name: str, data: bytes, *rest):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # Ctrl-C, or a worker killed mid-ingest
        return real(name, data, *rest)

    monkeypatch.setattr(sources, "reject_reason", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        ingest_folder(image_folder(tmp_path / "v2", seed=2), raw)
    assert calls["n"] == 3
    assert file_hashes(raw) == before


def test_swap_that_died_half_way_is_recovered(tmp_path: Path) -> None:
    """The swap renames raw -> raw.old, then staging -> raw; dying between them must not lose the data."""
    raw = tmp_path / "raw" / "toy"
    ingest_folder(image_folder(tmp_path / "v1", seed=1), raw)
    before = file_hashes(raw)
    raw.rename(raw.with_name("toy.old"))  # the state right after the first rename

    bad = tmp_path / "bad"
    write_corrupt_files(bad / "x")
    with pytest.raises(IngestError, match="no valid images"):
        ingest_folder(bad, raw)
    assert file_hashes(raw) == before
