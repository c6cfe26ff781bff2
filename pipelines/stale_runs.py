"""Free the pool slots of runs whose processes are gone, before a launch without the daemon.

A run killed with ``kill -9`` (or OOM) never reports its end: it stays STARTED and keeps its concurrency
slots, so the next ``make run`` / ``dagster asset materialize`` waits forever on "Step still blocked by
limit for pool gpu". The daemon's run monitoring cleans up after such runs; without the daemon nothing does.

Before such a launch this module looks at every run that holds or waits for a pool slot. A run is dead when
it is not finished and every process its events name (the run worker's and each step process's ``pid``)
is gone: it is marked failed and its slots are freed, with one line saying so. A run that still has a live
process is left alone, and the line says which PID to wait for or kill. Runs that never logged a PID are
left alone too. Only for SQLite instances (``DAGSTER_HOME`` on this machine): with Postgres the runs may
live on other machines, where a local PID means nothing; there the daemon's run monitoring does this.

    python -m pipelines.stale_runs        # by hand; `dagster asset materialize` / `job execute` (and so
                                          # `make run`) do it when they load pipelines.definitions
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

_UNFINISHED = {dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING}


@dataclass(frozen=True)
class SlotHolder:
    run_id: str
    status: str
    pids: tuple[int, ...]
    alive: tuple[int, ...]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    # A zombie (killed, not yet reaped by its parent) answers signal 0 but runs no more.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def run_pids(instance: dg.DagsterInstance, run_id: str) -> tuple[int, ...]:
    """Every process a run's engine events name: the run worker, the executor, each step subprocess."""
    pids = set()
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = record.dagster_event.event_specific_data if record.dagster_event else None
        pid = (getattr(data, "metadata", None) or {}).get("pid")
        if pid is not None and str(pid.value).isdigit():
            pids.add(int(pid.value))
    return tuple(sorted(pids))


def local_instance(instance: dg.DagsterInstance) -> bool:
    return "sqlite" in type(instance.event_log_storage).__name__.lower()


def slot_holders(instance: dg.DagsterInstance) -> list[SlotHolder]:
    holders = []
    for run_id in sorted(instance.event_log_storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        pids = run_pids(instance, run_id) if run else ()
        status = run.status.value if run else "DELETED"
        holders.append(SlotHolder(run_id, status, pids, tuple(p for p in pids if _alive(p))))
    return holders


def free_dead_runs(instance: dg.DagsterInstance, log: Callable[[str], None] = print) -> list[str]:
    """Mark failed and free the slots of runs whose processes are all gone; returns their run ids."""
    if not local_instance(instance):
        return []
    freed = []
    for h in slot_holders(instance):
        run = instance.get_run_by_id(h.run_id)
        finished = run is None or run.status not in _UNFINISHED
        if h.alive:
            if not finished:
                log(
                    f"run {h.run_id} ({h.status}) holds pool slots and its process(es) "
                    f"{' '.join(map(str, h.alive))} still run: wait for it, or `kill {' '.join(map(str, h.alive))}` "
                    "and re-run"
                )
            continue
        if not finished and not h.pids:
            log(
                f"run {h.run_id} ({h.status}) holds pool slots but logged no PID, so it cannot be checked: "
                f"if it is dead, free them with `dagster run delete {h.run_id}`"
            )
            continue
        if run is not None and not finished:
            instance.report_run_failed(
                run, f"its processes ({', '.join(map(str, h.pids))}) are gone: killed or crashed"
            )
        instance.event_log_storage.free_concurrency_slots_for_run(h.run_id)
        log(
            f"freed the pool slots of run {h.run_id}: it was {h.status} but its processes "
            f"({', '.join(map(str, h.pids)) or 'none'}) are gone; marked it failed"
        )
        freed.append(h.run_id)
    return freed


def launching_without_daemon(argv: list[str]) -> bool:
    """This process is a `dagster asset materialize` / `dagster job execute`: it runs the steps itself."""
    args = [a for a in argv[1:] if not a.startswith("-")]
    return os.path.basename(argv[0]) == "dagster" and args[:2] in (
        ["asset", "materialize"],
        ["job", "execute"],
    )


def main() -> int:
    with dg.DagsterInstance.get() as instance:
        free_dead_runs(instance, log=lambda m: print(f"stale_runs: {m}", file=sys.stderr))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
