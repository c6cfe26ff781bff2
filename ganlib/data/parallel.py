"""Ordered parallel map over CPU cores for the data stages (ingestion, preprocessing).

Worker processes come from a ``forkserver`` (not a plain fork of a possibly multi-threaded Dagster process,
which can deadlock); results come back in input order, so the outputs stay deterministic. Small inputs run
in this process: starting workers costs more than it saves below a few hundred files.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
MIN_PARALLEL_ITEMS = 512


def available_cpus() -> int:
    """Cores this process may run on (the affinity mask or a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def ordered_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int | None = None,
    chunksize: int = 64,
    min_items: int = MIN_PARALLEL_ITEMS,
) -> Iterator[R]:
    """``map(fn, items)`` across ``workers`` processes (default: every available core), in order, lazily.

    ``fn`` must be picklable (a module-level function or a ``functools.partial`` of one). Fewer than
    ``min_items`` items run in this process (a caller whose items are whole shards passes 2, deciding by
    the images in them with ``workers=1``).
    """
    workers = available_cpus() if workers is None else workers
    if workers <= 1 or len(items) < max(min_items, 2):
        yield from map(fn, items)
        return
    with mp.get_context("forkserver").Pool(workers) as pool:
        yield from pool.imap(fn, items, chunksize)
