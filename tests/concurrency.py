"""Concurrent callers for tests (tests/ is on pytest's pythonpath): N calls released at once."""

from __future__ import annotations

import threading

JOIN_S = 120  # every thread in these tests must finish well within this


def in_threads(fn, args_list: list[tuple]) -> list:
    """fn(*args) for each args, all released at once; results in order; exceptions re-raised."""
    results: list = [None] * len(args_list)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(args_list))

    def call(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(*args_list[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(args_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "a request never returned"
    if errors:
        raise errors[0]
    return results
