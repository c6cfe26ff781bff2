"""Folder ingestion against hostile or careless input: symbolic links out of the source, decompression
bombs under PIL's own limit, transparent images, hidden files and empty class folders."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_helpers import flat_png, image_folder, png_bytes, raw_files
from PIL import Image

from ganlib.data.preprocess import load_image, load_params
from ganlib.data.sources import ingest_folder

REPO = Path(__file__).resolve().parents[3]


def _table(raw: Path, name: str) -> dict[str, str]:
    t = pd.read_parquet(raw / f"{name}.parquet")
    return dict(zip(t["file"], t["reason"], strict=True))


def test_links_never_leave_the_source_folder(tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", per_class=20)
    outside = tmp_path / "private"
    outside.mkdir()
    secret = png_bytes(np.full((8, 8), 77, np.uint8))  # a valid image: following the link would accept it
    (outside / "secret.png").write_bytes(secret)
    (src / "a" / "leak.png").symlink_to(outside / "secret.png")
    (src / "a" / "passwd.png").symlink_to("/etc/passwd")
    (src / "b" / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (src / "b" / "dirlink").symlink_to(outside, target_is_directory=True)
    (src / "b" / "alias.png").symlink_to(src / "a" / "000.png")  # stays inside the source: read like a file

    report = ingest_folder(src, tmp_path / "raw", max_reject_fraction=0.5)

    rejects = _table(tmp_path / "raw", "rejects")
    assert set(rejects) == {"a/leak.png", "a/passwd.png", "b/dangling.png", "b/dirlink"}
    assert "outside the source folder" in rejects["a/leak.png"]
    # /etc/passwd was never opened: reading it would have given PIL's "cannot identify image file".
    assert "outside the source folder" in rejects["a/passwd.png"]
    assert "broken symbolic link" in rejects["b/dangling.png"]
    assert "symbolic link to a folder" in rejects["b/dirlink"]
    assert report.rejected == 4 and report.accepted == 41
    copied = raw_files(tmp_path / "raw")  # regular members only: the raw data holds bytes, not links
    assert not any(name.endswith(("leak.png", "passwd.png", "secret.png")) for name in copied)
    assert sum(1 for p in (tmp_path / "raw").rglob("*") if p.is_file() and secret in p.read_bytes()) == 0
    assert copied["b/alias.png"] == (src / "a" / "000.png").read_bytes()


def test_image_over_the_pixel_budget_is_rejected_with_its_size(tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", per_class=10)  # 12x12 = 144 pixels each
    Image.fromarray(np.zeros((10, 20), np.uint8)).save(src / "a" / "wide.png")  # 200 pixels
    report = ingest_folder(src, tmp_path / "raw", max_reject_fraction=0.5, max_pixels=150)
    assert report.accepted == 20
    assert _table(tmp_path / "raw", "rejects") == {
        "a/wide.png": "ValueError: image is 20x10 = 200 pixels, over the budget of 150 "
        "(ingest.max_pixels); not decoded"
    }


def test_huge_png_under_pils_limit_is_refused_from_its_header(tmp_path: Path) -> None:
    """13000x13000 RGBA: 657 KB on disk, under PIL's 2x89 MP error limit, 676 MB decoded. The ingest runs
    in a child process whose peak RSS must stay far below one decode of it."""
    src = image_folder(tmp_path / "src", per_class=10)
    flat_png(src / "a" / "bomb.png", 13000, 13000)
    assert (src / "a" / "bomb.png").stat().st_size < 1_000_000
    script = (
        "import re, sys\n"
        "from ganlib.data.sources import ingest_folder\n"
        "r = ingest_folder(sys.argv[1], sys.argv[2], max_reject_fraction=0.5)\n"
        "print(r.rejects[0]['reason'])\n"
        # VmHWM: this process image's own peak (ru_maxrss would carry the forking parent's over exec)
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(src), str(tmp_path / "raw")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=REPO,
    ).stdout.splitlines()
    assert out[0] == (
        "ValueError: image is 13000x13000 = 169000000 pixels, over the budget of 25000000 "
        "(ingest.max_pixels); not decoded"
    )
    peak_mb = int(out[1]) / 1024
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB: the image was decoded"
    assert "a/bomb.png" not in raw_files(tmp_path / "raw")


def _half_transparent(stored_rgb: tuple[int, int, int]) -> Path:
    """8x8 RGBA: left half opaque white, right half fully transparent but storing ``stored_rgb``, and one
    half-transparent black pixel at (0, 0)."""
    arr = np.zeros((8, 8, 4), np.uint8)
    arr[:, :4] = (255, 255, 255, 255)
    arr[:, 4:] = (*stored_rgb, 0)
    arr[0, 0] = (0, 0, 0, 128)
    return arr


@pytest.mark.parametrize(("background", "channels"), [(0, 1), (255, 1), ([255, 0, 0], 3), ([0, 0, 255], 3)])
def test_transparent_pixels_take_the_configured_background(tmp_path: Path, background, channels: int) -> None:
    arr = _half_transparent((128, 128, 128))  # grey under the transparency: what convert() alone shows
    Image.fromarray(arr, "RGBA").save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png", 8, channels, background).astype(int)  # [C, 8, 8]

    bg = np.array(background if isinstance(background, list) else [background] * 3, float)
    # Reference: straight alpha blending, out = a*fg + (1-a)*bg, then PIL's ITU-R 601 luma for greyscale.
    expected_rgb = np.empty((8, 8, 3))
    alpha = arr[..., 3:4] / 255.0
    expected_rgb[:] = alpha * arr[..., :3] + (1 - alpha) * bg
    if channels == 1:
        expected = (expected_rgb @ np.array([0.299, 0.587, 0.114]))[None]
    else:
        expected = expected_rgb.transpose(2, 0, 1)
    assert np.abs(out - expected).max() <= 1.0, (out, expected)


def test_background_param_is_validated(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("preprocess:\n  background: red\n")
    with pytest.raises(SystemExit, match=r"preprocess\.background must be a grey level 0-255 or"):
        load_params(params)
    params.write_text("preprocess:\n  background: [255, 0, 0]\n")
    assert load_params(params)["background"] == [255, 0, 0]


def test_hidden_entries_and_empty_class_folders_are_listed_not_silently_skipped(tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", per_class=4)
    (src / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (src / "a" / ".thumb.png").write_bytes(png_bytes(np.zeros((8, 8), np.uint8)))
    (src / ".git" / "objects").mkdir(parents=True)
    (src / ".git" / "objects" / "x").write_text("blob")
    (src / "empty_class").mkdir()
    (src / "only_hidden").mkdir()
    (src / "only_hidden" / ".keep").write_text("")

    report = ingest_folder(src, tmp_path / "raw")
    expected = {
        ".DS_Store": "hidden file",
        ".git/": "hidden folder",
        "a/.thumb.png": "hidden file",
        "empty_class/": "empty class folder: no files to ingest",
        "only_hidden/": "empty class folder: no files to ingest",
        "only_hidden/.keep": "hidden file",
    }
    assert {r["file"]: r["reason"] for r in report.skipped} == expected
    assert _table(tmp_path / "raw", "skipped") == expected
    assert report.accepted == 8 and report.rejected == 0 and report.classes == {"a": 4, "b": 4}


@pytest.mark.timeout(60)  # opening a FIFO for reading blocks until a writer comes: the test would hang
def test_a_fifo_named_like_an_image_is_rejected_without_hanging(tmp_path: Path) -> None:
    src = image_folder(tmp_path / "src", per_class=20)
    os.mkfifo(src / "a" / "pipe.png")
    (src / "b" / "link-to-pipe.png").symlink_to(src / "a" / "pipe.png")

    report = ingest_folder(src, tmp_path / "raw", max_reject_fraction=0.5)
    assert {r["file"]: r["reason"] for r in report.rejects} == {
        "a/pipe.png": "not a regular file",
        "b/link-to-pipe.png": "symbolic link to something that is not a regular file",
    }
    assert report.accepted == 40
