"""torchvision datasets (MNIST, FashionMNIST, CIFAR-10) read from a local root; downloaded only when allowed.

Without the files and without permission to download, the error names the exact folder and files to put
there, so an offline machine can be set up by copying them in.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .sources import IngestError

_MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
# name -> (torchvision class name, folder under the root torchvision reads, files it expects there)
DATASETS: dict[str, tuple[str, str, list[str]]] = {
    "MNIST": ("MNIST", "MNIST/raw", _MNIST_FILES),
    "FashionMNIST": ("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES),
    "CIFAR10": (
        "CIFAR10",
        "cifar-10-batches-py",
        [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
    ),
}
_ALIASES = {"CIFAR-10": "CIFAR10", "FASHION-MNIST": "FashionMNIST", "FASHIONMNIST": "FashionMNIST"}


def _canonical(name: str) -> str:
    for known in DATASETS:
        if name.upper() == known.upper():
            return known
    if name.upper() in _ALIASES:
        return _ALIASES[name.upper()]
    raise IngestError(f"unknown torchvision dataset {name!r}; supported: {', '.join(DATASETS)}")


def class_folder(name: str) -> str:
    """A class name usable as a folder name: "0 - zero" -> "0-zero", "T-shirt/top" -> "T-shirt_top"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace(" - ", "-")).strip("_") or "_"


def torchvision_arrays(
    name: str, root: Path, allow_download: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The training split as (uint8 images [N, H, W] or [N, H, W, 3], int64 labels [N], class folder names)."""
    import torchvision.datasets as tvd

    key = _canonical(name)
    cls_name, folder, files = DATASETS[key]
    root = Path(root).resolve()
    try:
        ds = getattr(tvd, cls_name)(str(root), train=True, download=allow_download)
    except RuntimeError as exc:
        if "not found" not in str(exc) and "corrupted" not in str(exc):
            raise IngestError(f"could not read torchvision {key} from {root}: {exc}") from exc
        where = root / folder
        hint = (
            "set ingest.allow_download: true in params.yaml to download it"
            if not allow_download
            else "the download did not complete (no network?)"
        )
        raise IngestError(
            f"torchvision {key} is not under {root}: put these files into {where}/ "
            f"({', '.join(files)}), or {hint}"
        ) from None
    except Exception as exc:  # a download that failed half way, a truncated file, ...
        raise IngestError(
            f"could not load torchvision {key} from {root}: {type(exc).__name__}: {exc}"
        ) from exc
    images = np.asarray(ds.data, dtype=np.uint8)  # MNIST: a uint8 tensor; CIFAR: a uint8 ndarray
    labels = np.asarray(ds.targets, dtype=np.int64)
    return images, labels, [class_folder(c) for c in ds.classes]
