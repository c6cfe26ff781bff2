"""bench/bench_random_reads.py at toy size: both mappings read the same batches from an evicted split, and
the random-read mapping never reads more from storage than read-around does."""

from __future__ import annotations

from pathlib import Path

from bench.bench_random_reads import run


def test_both_mappings_are_measured_from_a_cold_cache(tmp_path: Path) -> None:
    r = run(images=2048, batches=4, batch_size=16, tmp=str(tmp_path))
    assert r["images_read"] == 64 and r["image_bytes"] == 3 * 64 * 64
    # On a disk-backed temp dir the random mapping reads about one image per image; on tmpfs both read 0.
    assert 0 <= r["random_bytes_per_image"] <= r["plain_bytes_per_image"]
    assert r["random_bytes_per_image"] < 4 * r["image_bytes"]
    assert r["split_bytes"] == 2048 * r["image_bytes"] and r["page_cache_room"] > 0
