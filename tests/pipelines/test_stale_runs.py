"""A run killed with SIGKILL keeps its `gpu` pool slot; a launch without the daemon frees it (the run's
processes are gone), so the re-run proceeds instead of waiting forever. A live run is left alone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from pipelines.resources import REPO_ROOT
from pipelines.stale_runs import free_dead_runs, launching_without_daemon

HOG = """
import os, time
import dagster as dg

@dg.asset(pool="gpu")
def hog() -> int:
    time.sleep(float(os.environ["HOG_SECONDS"]))
    return 1
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")  # gpu pool: default_limit 1
    (tmp_path / "hog.py").write_text(HOG)
    with dg.DagsterInstance.from_config(str(home)) as instance:  # create the SQLite schema once, up front:
        instance.get_runs()  # two processes creating it at the same moment collide
    return home


def _env(home: Path, seconds: float) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "HOG_SECONDS": str(seconds), "OMP_NUM_THREADS": "1"}


def _dagster(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("dagster")), *args]


def _start_hog(home: Path) -> subprocess.Popen:
    """`dagster asset materialize` of a gpu-pool step that sleeps; returns once the step holds the slot."""
    proc = subprocess.Popen(
        _dagster("asset", "materialize", "-f", str(home.parent / "hog.py"), "--select", "hog"),
        cwd=home.parent,
        env=_env(home, 300),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill below takes the run worker and its step
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            if instance.event_log_storage.get_concurrency_info("gpu").claimed_slots:
                return proc
        assert proc.poll() is None, "the run ended before it took the slot"
        time.sleep(0.5)
    raise AssertionError("the run never took the gpu slot")


def test_killed_run_frees_its_slot_and_the_rerun_proceeds(home: Path) -> None:
    proc = _start_hog(home)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 of the run, mid-step
    proc.wait(30)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.STARTED  # nothing reported its end
        assert [s.run_id for s in instance.event_log_storage.get_concurrency_info("gpu").claimed_slots] == [
            run.run_id
        ]
        lines: list[str] = []
        assert free_dead_runs(instance, log=lines.append) == [run.run_id]
        assert len(lines) == 1 and lines[0].startswith(
            f"freed the pool slots of run {run.run_id}: it was STARTED"
        )
        assert f"({proc.pid}" in lines[0] or f", {proc.pid}" in lines[0]  # the run worker's PID is named
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []
        assert free_dead_runs(instance, log=lines.append) == [] and len(lines) == 1  # nothing left to do

    rerun = subprocess.run(
        _dagster("asset", "materialize", "-f", str(home.parent / "hog.py"), "--select", "hog"),
        cwd=home.parent,
        env=_env(home, 0),
        capture_output=True,
        text=True,
        timeout=300,  # without the fix it would wait on the dead run's slot forever
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]


def test_cli_launch_of_the_pipeline_frees_a_dead_runs_slot(home: Path) -> None:
    """The hook in pipelines.definitions: any `dagster asset materialize -m pipelines.definitions` frees
    them before it runs a step (here the selection is empty on purpose: loading is all it takes)."""
    proc = _start_hog(home)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    out = subprocess.run(
        _dagster("asset", "materialize", "-m", "pipelines.definitions", "--select", "no_such_asset"),
        cwd=REPO_ROOT,
        env=_env(home, 0),
        capture_output=True,
        text=True,
        timeout=300,
    )
    freed = [ln for ln in out.stderr.splitlines() if ln.startswith("pipelines: freed the pool slots of run ")]
    assert len(freed) == 1, out.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_runs()[0].status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_info("gpu").claimed_slots == []


def test_live_run_is_left_alone_and_the_line_says_what_to_do(home: Path) -> None:
    proc = _start_hog(home)
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            lines: list[str] = []
            assert free_dead_runs(instance, log=lines.append) == []
            (run,) = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.STARTED
            assert len(instance.event_log_storage.get_concurrency_info("gpu").claimed_slots) == 1
            assert len(lines) == 1 and lines[0].startswith(f"run {run.run_id} (STARTED) holds pool slots")
            assert str(proc.pid) in lines[0] and "wait for it, or `kill " in lines[0]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/x/.venv/bin/dagster", "asset", "materialize", "-m", "pipelines.definitions"], True),
        (["dagster", "job", "execute", "-m", "pipelines.definitions", "-j", "retrain"], True),
        (["dagster", "dev", "-m", "pipelines.definitions"], False),
        (["dagster-daemon", "run"], False),
        (["/usr/bin/python", "-m", "pytest"], False),
    ],
)
def test_only_cli_launches_trigger_the_cleanup(argv: list[str], expected: bool) -> None:
    assert launching_without_daemon(argv) is expected
