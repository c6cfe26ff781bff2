"""The processed data format: uint8 shards per split plus a parquet index and a meta.json.

``<root>/meta.json``            resolution, channels, class names, counts per split, preprocessing params
``<root>/index.parquet``        one row per image: split, shard, offset, label, source file, source sha256
``<root>/<split>/images-00000.npy``  uint8 [n, C, H, W]
``<root>/<split>/labels-00000.npy``  int64 [n] (-1 when unlabelled)

Shards are memory-mapped on load, so opening a split is O(1) and an epoch reads straight from the page cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHARD_SIZE = 4096
# The raw layout's class folder for images without a label (their shard label is -1). It lives here, in a
# file the preprocess stage copies into a workspace, so the stage runs without the rest of ganlib.
UNLABELLED = "_unlabelled"


@dataclass
class Split:
    images: np.ndarray  # uint8 [N, C, H, W]
    labels: np.ndarray | None  # int64 [N], None when unlabelled
    meta: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.meta.get("class_names") or [])

    def __len__(self) -> int:
        return len(self.images)


def write_split(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> list[str]:
    """Write ``images``/``labels`` as shards; returns the shard file names (relative to ``root``)."""
    out = root / split
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i, start in enumerate(range(0, max(len(images), 1), SHARD_SIZE)):
        np.save(
            out / f"images-{i:05d}.npy",
            np.ascontiguousarray(images[start : start + SHARD_SIZE], dtype=np.uint8),
        )
        np.save(out / f"labels-{i:05d}.npy", labels[start : start + SHARD_SIZE].astype(np.int64))
        names.append(f"{split}/images-{i:05d}.npy")
    return names


def read_meta(root: str | Path) -> dict[str, Any]:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"no processed dataset at {root} (missing meta.json): run the preprocess stage first"
        )
    return json.loads(path.read_text())


def load_split(root: str | Path, split: str) -> Split:
    root = Path(root)
    meta = read_meta(root)
    image_files = sorted((root / split).glob("images-*.npy"))
    if not image_files:
        raise FileNotFoundError(f"split '{split}' has no shards under {root / split}")
    images = np.concatenate([np.load(f, mmap_mode="r") for f in image_files])
    labels = np.concatenate([np.load(str(f).replace("images-", "labels-")) for f in image_files])
    has_labels = bool(meta.get("class_names")) and (labels >= 0).all()
    return Split(images=images, labels=labels if has_labels else None, meta=meta)
