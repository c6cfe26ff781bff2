"""The shard view: random access into memory-mapped shards agrees with one concatenated array, and no
reader (training, DataLoader workers, the FID reference) needs the whole split in RAM."""

from __future__ import annotations

import json
import pickle
from functools import partial

import numpy as np
import pytest

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


def _square(x: int) -> int:
    return x * x


def test_ordered_map_keeps_input_order_across_processes() -> None:
    items = list(range(MIN_PARALLEL_ITEMS + 37))
    assert list(ordered_map(partial(_square), items, workers=2, chunksize=16)) == [x * x for x in items]
