"""The shard view: random access into memory-mapped shards agrees with one concatenated array, and no
reader (training, DataLoader workers, the FID reference) needs the whole split in RAM."""

from __future__ import annotations

import json
import os
import pickle
from functools import partial

import numpy as np
import pytest
import torch

from ganlib.batch_order import ImageBatches
from ganlib.data import shards
from ganlib.data.parallel import MIN_PARALLEL_ITEMS, ordered_map
from ganlib.data.shards import ShardedImages, load_split, write_shard


@pytest.fixture
def sharded(tmp_path):
    """Three shards of unequal length (5, 7, 3) and the same images as one in-RAM reference array."""
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8) for n in (5, 7, 3)]
    for i, p in enumerate(parts):
        write_shard(tmp_path, "train", i, p, np.full(len(p), i))
    (tmp_path / "meta.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
    return load_split(tmp_path, "train"), np.concatenate(parts)


def test_random_access_matches_the_concatenated_array(sharded) -> None:
    split, reference = sharded
    assert isinstance(split.images, ShardedImages)
    assert split.images.shape == reference.shape and len(split) == 15
    idx = np.array([14, 0, 5, 4, 12, 5, 11])  # unsorted, across shard borders, with a repeat
    np.testing.assert_array_equal(split.images[idx], reference[idx])
    np.testing.assert_array_equal(split.images[3:13:2], reference[3:13:2])
    np.testing.assert_array_equal(split.images[-1], reference[-1])
    np.testing.assert_array_equal(np.asarray(split.images), reference)
    np.testing.assert_array_equal(np.concatenate(list(split.images.chunks(4))), reference)
    assert split.labels.tolist() == [0] * 5 + [1] * 7 + [2] * 3
    with pytest.raises(IndexError):
        split.images[np.array([15])]


def test_pickles_as_paths_not_pixels(sharded) -> None:
    split, reference = sharded
    blob = pickle.dumps(split.images)  # what a DataLoader worker receives under spawn/forkserver
    assert b"images-00000.npy" in blob and len(blob) < 1000
    np.testing.assert_array_equal(pickle.loads(blob)[np.arange(15)], reference)


def _advice_of_mappings(path) -> list[bool]:
    """For each mapping of ``path`` in this process, whether it carries the random-read hint (``rr`` among
    its VmFlags in /proc/self/smaps: what ``madvise(MADV_RANDOM)`` sets)."""
    flags, current = [], None
    for line in open("/proc/self/smaps"):  # noqa: SIM115
        if line.split()[-1:] == [str(path)]:
            current = True
        elif line.startswith("VmFlags:") and current:
            flags.append("rr" in line.split())
            current = None
    return flags


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="reads Linux's /proc/self/smaps")
def test_a_split_larger_than_the_page_cache_is_mapped_for_random_reads(sharded, monkeypatch) -> None:
    """The kernel reads megabytes around a page fault unless told reads are random: right for a split the
    cache holds (the first epoch warms it), ruinous for one it cannot (every batch reads ~77x its bytes).
    The training reader decides by size; sequential passes keep read-ahead; a DataLoader worker's copy
    keeps the decision."""
    split, reference = sharded
    first = split.images.files[0]
    assert _advice_of_mappings(first) == [False]
    monkeypatch.setattr(shards, "page_cache_room", lambda: split.images.nbytes)  # it just fits
    fits = ImageBatches(split.images)
    assert not fits.images.random_access
    assert _advice_of_mappings(first) == [False, False]
    monkeypatch.setattr(shards, "page_cache_room", lambda: split.images.nbytes - 1)
    reader = ImageBatches(split.images)
    assert sorted(_advice_of_mappings(first)) == [False, False, True]
    monkeypatch.setattr(shards, "page_cache_room", lambda: 2**40)  # a worker on a roomier machine
    worker_copy = pickle.loads(pickle.dumps(reader.images))
    assert sorted(_advice_of_mappings(first)) == [False, False, True, True]
    np.testing.assert_array_equal(reader[torch.tensor([14, 0, 5])][0].numpy(), reference[[14, 0, 5]])
    np.testing.assert_array_equal(worker_copy[[14, 0, 5]], reference[[14, 0, 5]])


def test_page_cache_room_is_half_the_memory_at_most() -> None:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < shards.page_cache_room() <= total // 2


def _square(x: int) -> int:
    return x * x


def test_ordered_map_keeps_input_order_across_processes() -> None:
    items = list(range(MIN_PARALLEL_ITEMS + 37))
    assert list(ordered_map(partial(_square), items, workers=2, chunksize=16)) == [x * x for x in items]
