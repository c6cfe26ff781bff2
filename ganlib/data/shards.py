"""The processed data format: uint8 shards per split plus a parquet index and a meta.json.

``<root>/meta.json``            resolution, channels, class names, counts per split, preprocessing params
``<root>/index.parquet``        one row per image: split, shard, offset, label, source file, source sha256
``<root>/<split>/images-00000.npy``  uint8 [n, C, H, W]
``<root>/<split>/labels-00000.npy``  int64 [n] (-1 when unlabelled)

Shards are memory-mapped on load and never concatenated: ``Split.images`` is a ``ShardedImages`` view that
answers ``images[i]``, ``images[a:b]`` and ``images[index_array]`` by reading only those rows from the shards.
Opening a split maps each shard (no pixels are read) and loads the labels (8 bytes an image); after that RAM
holds only the batches being read (the rest is the OS page cache), so a split larger than RAM trains as
well as a small one.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHARD_SIZE = 4096
# The raw layout's class folder for images without a label (their shard label is -1). It lives here, in a
# file the preprocess stage copies into a workspace, so the stage runs without the rest of ganlib.
UNLABELLED = "_unlabelled"


class ShardedImages:
    """uint8 ``[N, C, H, W]`` over memory-mapped shard files, indexed without copying the whole set.

    Pickles as its file paths (a DataLoader worker reopens the maps instead of receiving the pixels).
    ``np.asarray(images)`` still materializes everything: use it only on a split known to be small.
    """

    def __init__(self, files: list[Path], random_access: bool = False) -> None:
        self.files = [Path(f) for f in files]
        self.random_access = random_access
        self._open()

    def _open(self) -> None:
        self.shards = [np.load(f, mmap_mode="r") for f in self.files]
        if self.random_access:
            for shard in self.shards:
                _advise_random(shard)
        shapes = {s.shape[1:] for s in self.shards}
        if len(shapes) != 1:
            raise ValueError(f"shards of one split differ in image shape: {sorted(shapes)}")
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])

    def __getstate__(self) -> dict[str, Any]:
        return {"files": self.files, "random_access": self.random_access}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.files, self.random_access = state["files"], state["random_access"]
        self._open()

    def for_random_access(self) -> ShardedImages:
        """The view training batches are gathered through, in random order. A split the page cache can hold
        keeps the kernel's read-around: from a cold cache the first epoch then reads the shards in large
        blocks, and every later read is a hit. A larger split is mapped for random reads
        (``madvise(MADV_RANDOM)``), so a page fault reads the pages an image is on, not the read-around
        window (up to ``read_ahead_kb`` around every fault: 8 MB here, 77x what a 12 KB image needs, every
        batch, since nothing stays cached); ``bench/bench_random_reads.py`` measures both."""
        return ShardedImages(self.files, random_access=self.nbytes > page_cache_room())

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.shards[0].shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.shards[0].dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __getitem__(self, key: int | slice | np.ndarray | list[int]) -> np.ndarray:
        if isinstance(key, slice):
            key = np.arange(*key.indices(len(self)))
        elif np.isscalar(key):
            i = int(key) + (len(self) if int(key) < 0 else 0)
            return self[np.array([i])][0]
        idx = np.asarray(key, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} images")
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        shard_of = np.searchsorted(self.starts, idx, side="right") - 1
        for s in np.unique(shard_of):
            rows = np.flatnonzero(shard_of == s)
            out[rows] = self.shards[s][idx[rows] - self.starts[s]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def chunks(self, size: int = SHARD_SIZE) -> Iterator[np.ndarray]:
        """Consecutive in-RAM blocks of at most ``size`` images: a pass over the split in bounded memory."""
        for start in range(0, len(self), size):
            yield self[start : start + size]


def page_cache_room() -> int:
    """Bytes of file data this machine (or its container) can be expected to keep cached: half its memory,
    counted against a cgroup limit where there is one (a pod's page cache is charged to the pod)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): assume room
        return 2**63
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            memory = min(memory, int(Path(limit).read_text()))
        except (OSError, ValueError):  # absent, or "max": no limit
            pass
    return memory // 2


def _advise_random(shard: np.ndarray) -> None:
    mapping = getattr(shard, "_mmap", None)  # numpy's memmap keeps its mmap object here (None when empty)
    if mapping is not None and hasattr(mmap, "MADV_RANDOM"):  # POSIX only
        mapping.madvise(mmap.MADV_RANDOM)


@dataclass
class Split:
    images: ShardedImages  # uint8 [N, C, H, W], memory-mapped
    labels: np.ndarray | None  # int64 [N], None when unlabelled
    meta: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return len(self.meta.get("class_names") or [])

    def __len__(self) -> int:
        return len(self.images)


def shard_names(split: str, i: int) -> tuple[str, str]:
    """(images, labels) file names of shard ``i`` of ``split``, relative to the dataset root."""
    return f"{split}/images-{i:05d}.npy", f"{split}/labels-{i:05d}.npy"


def write_shard(root: Path, split: str, i: int, images: np.ndarray, labels: np.ndarray) -> str:
    """Write shard ``i`` of ``split`` (at most ``SHARD_SIZE`` images); returns its images file name."""
    image_name, label_name = shard_names(split, i)
    (root / split).mkdir(parents=True, exist_ok=True)
    np.save(root / image_name, np.ascontiguousarray(images, dtype=np.uint8))
    np.save(root / label_name, np.asarray(labels).astype(np.int64))
    return image_name


def create_shard(root: Path, split: str, i: int, labels: np.ndarray, image_shape: tuple[int, ...]) -> Path:
    """Shard ``i`` of ``split`` with its labels written and its images file allocated (zeros, on disk, not in
    RAM) for writers to fill in place (``preprocess._write_rows``); returns the images file's path.
    The bytes are those ``write_shard`` would write for the same images."""
    image_name, label_name = shard_names(split, i)
    (root / split).mkdir(parents=True, exist_ok=True)
    np.save(root / label_name, np.asarray(labels).astype(np.int64))
    shape = (len(labels), *image_shape)
    if len(labels):
        np.lib.format.open_memmap(root / image_name, mode="w+", dtype=np.uint8, shape=shape).flush()
    else:  # an empty file cannot be memory-mapped
        np.save(root / image_name, np.empty(shape, np.uint8))
    return root / image_name


def write_split(root: Path, split: str, images: np.ndarray, labels: np.ndarray) -> list[str]:
    """Write in-RAM ``images``/``labels`` as shards; returns the shard file names (relative to ``root``)."""
    return [
        write_shard(root, split, i, images[start : start + SHARD_SIZE], labels[start : start + SHARD_SIZE])
        for i, start in enumerate(range(0, max(len(images), 1), SHARD_SIZE))
    ]


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
    images = ShardedImages(image_files)
    labels = np.concatenate([np.load(str(f).replace("images-", "labels-")) for f in image_files])
    has_labels = bool(meta.get("class_names")) and (labels >= 0).all()
    return Split(images=images, labels=labels if has_labels else None, meta=meta)
