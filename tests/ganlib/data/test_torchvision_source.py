"""torchvision sources read from a local root in torchvision's own on-disk format; never downloaded unasked."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_helpers import fake_mnist, raw_files
from PIL import Image

from ganlib.data.sources import IngestError, ingest_source
from ganlib.data.torchvision_source import class_folder


def test_fake_mnist_is_ingested_pixel_for_pixel(tmp_path: Path) -> None:
    root = tmp_path / "tv"
    images, labels = fake_mnist(root, n_train=30)
    raw = tmp_path / "data" / "raw" / "mnist"

    report = ingest_source("torchvision:MNIST", raw, download_root=root, allow_download=False)

    assert report.accepted == 30 and report.rejected == 0
    names = [
        f"{d}-{w}"
        for d, w in enumerate(
            ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
        )
    ]
    assert report.classes == {names[c]: int((labels == c).sum()) for c in range(10)}
    manifest = pd.read_parquet(raw / "manifest.parquet")
    assert set(manifest["height"]) == {28} and set(manifest["width"]) == {28}
    # Files are named in dataset order (000000.png = item 0): each PNG decodes to the training array.
    files = raw_files(raw)
    assert set(files) == set(manifest["file"])
    for file, label in zip(manifest["file"], manifest["label"], strict=True):
        i = int(Path(file).stem)
        assert label == names[labels[i]]
        with Image.open(io.BytesIO(files[file])) as im:
            np.testing.assert_array_equal(np.asarray(im), images[i])


def test_missing_files_without_permission_name_the_root(tmp_path: Path) -> None:
    root = tmp_path / "empty-root"
    raw = tmp_path / "data" / "raw" / "mnist"
    with pytest.raises(IngestError) as err:
        ingest_source("torchvision:MNIST", raw, download_root=root, allow_download=False)
    message = str(err.value)
    assert str(root.resolve() / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message and "allow_download" in message
    assert not raw.exists()
    assert not any(root.rglob("*.gz"))  # nothing was downloaded


def test_default_root_is_next_to_raw_and_unknown_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(IngestError) as err:
        ingest_source("torchvision:FashionMNIST", tmp_path / "data" / "raw" / "fm")
    assert str(tmp_path / "data" / "torchvision" / "FashionMNIST" / "raw") in str(err.value)
    with pytest.raises(IngestError, match="supported: MNIST, FashionMNIST, CIFAR10"):
        ingest_source("torchvision:ImageNet", tmp_path / "data" / "raw" / "x")


def test_class_names_become_safe_folder_names() -> None:
    assert class_folder("0 - zero") == "0-zero"
    assert class_folder("T-shirt/top") == "T-shirt_top"
    assert class_folder("Ankle boot") == "Ankle_boot"
