"""Bytes read from storage per training image when the split is not in the page cache: shards mapped for
random reads (``madvise(MADV_RANDOM)``, what training uses for a split larger than the page cache, see
``ShardedImages.for_random_access``) against a plain mapping (the kernel's read-around: on Linux up to
``read_ahead_kb`` around every page fault, what training uses for a split that fits).

    python -m bench.bench_random_reads [--images 20000] [--batches 20] [--batch-size 64]

Writes a synthetic split of 64x64 RGB shards in a temp dir (deleted after), then, for each mapping in turn,
evicts the shard files from the page cache (``posix_fadvise(DONTNEED)`` after an ``fsync``: no root needed),
reads the same random batches as training would (``epoch_batches``) and counts the bytes this process read
from storage (``/proc/self/io``). Linux only; on a RAM-backed temp dir (tmpfs) nothing is read from storage
and both rows say 0. ``run()`` returns the numbers.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Runnable as a plain script from a checkout without an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganlib.batch_order import epoch_batches
from ganlib.data.shards import SHARD_SIZE, ShardedImages, page_cache_room, write_shard


def _storage_read_bytes() -> int:
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("read_bytes"))


def _evict(files: list[Path]) -> None:
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _cold_read(files: list[Path], batches: list[np.ndarray], random_access: bool) -> tuple[int, float]:
    """(bytes read from storage, seconds) to gather ``batches`` from freshly mapped, evicted shards."""
    gc.collect()  # a mapping still open keeps its pages in the cache
    _evict(files)
    images = ShardedImages(files, random_access=random_access)
    before, t0 = _storage_read_bytes(), time.perf_counter()
    for idx in batches:
        images[idx]
    return _storage_read_bytes() - before, time.perf_counter() - t0


def run(
    images: int = 20_000, batches: int = 20, batch_size: int = 64, tmp: str | None = None
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=tmp) as root:
        for i, start in enumerate(range(0, images, SHARD_SIZE)):
            n = min(SHARD_SIZE, images - start)
            write_shard(Path(root), "train", i, rng.integers(0, 256, (n, 3, 64, 64), np.uint8), np.zeros(n))
        files = sorted((Path(root) / "train").glob("images-*.npy"))
        order = epoch_batches(images, batch_size, seed=0, start_batch=0)
        picked = [next(order).numpy() for _ in range(batches)]
        plain_bytes, plain_s = _cold_read(files, picked, random_access=False)
        random_bytes, random_s = _cold_read(files, picked, random_access=True)
    read = batches * batch_size
    image_bytes = 3 * 64 * 64
    return {
        "images": images,
        "images_read": read,
        "image_bytes": image_bytes,
        "plain_bytes_per_image": plain_bytes / read,
        "random_bytes_per_image": random_bytes / read,
        "plain_s": plain_s,
        "random_s": random_s,
        "ratio": (random_bytes / plain_bytes) if plain_bytes else float("nan"),
        "split_bytes": images * image_bytes,
        "page_cache_room": page_cache_room(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--tmp", default=None, help="where the temp split goes (default: the system temp dir)")
    args = ap.parse_args(argv)
    r = run(args.images, args.batches, args.batch_size, args.tmp)
    kb = 1 / 1024
    print(
        f"{r['images_read']} random images of {r['image_bytes'] * kb:.0f} KB from {r['images']}, cold page cache"
    )
    print("| mapping | KB read from storage per image | x the image | seconds |")
    print("|---|---:|---:|---:|")
    for name, key in (
        ("plain: read-around (training, split fits)", "plain"),
        ("random reads (training, split > room)", "random"),
    ):
        per = r[f"{key}_bytes_per_image"]
        print(f"| {name} | {per * kb:,.0f} | {per / r['image_bytes']:.1f} | {r[f'{key}_s']:.2f} |")
    print(f"ratio random / plain bytes: {r['ratio']:.3f}")
    fits = r["split_bytes"] <= r["page_cache_room"]
    print(
        f"this split ({r['split_bytes'] / 2**30:.2f} GiB) {'fits' if fits else 'does not fit'} the page cache room "
        f"({r['page_cache_room'] / 2**30:.1f} GiB): training maps it {'plain' if fits else 'for random reads'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
