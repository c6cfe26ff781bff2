"""The preprocess stage under DVC in a temp git + DVC workspace, through ``pipelines.dvc``."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
import yaml
from data_helpers import data_workspace, image_folder, set_params

from ganlib.data.shards import load_split
from ganlib.data.sources import ingest_folder
from pipelines import dvc
from pipelines.resources import REPO_ROOT


def _lock_hash(ws: Path) -> str:
    return yaml.safe_load((ws / "dvc.lock").read_text())["stages"]["preprocess"]["outs"][0]["md5"]


def test_first_run_locks_second_is_noop_param_change_gives_new_hash(tmp_path: Path) -> None:
    ws = data_workspace(tmp_path / "ws", tmp_path / "src", resolution=8)
    ingest_folder(image_folder(tmp_path / "src", per_class=6), ws / "data" / "raw" / "toy")
    dvc.add(ws, "data/raw/toy")
    assert not (ws / "dvc.lock").exists()

    first = dvc.repro(ws, "preprocess")
    assert first.ran and first.previous_hash is None and not first.up_to_date
    assert first.output_hash == _lock_hash(ws) and first.output_hash.endswith(".dir")
    assert load_split(ws / "data" / "processed", "train").images.shape[1:] == (1, 8, 8)

    second = dvc.repro(ws, "preprocess")
    assert not second.ran and second.up_to_date
    assert second.output_hash == first.output_hash == _lock_hash(ws)

    set_params(ws, preprocess={"resolution": 12})
    third = dvc.repro(ws, "preprocess")
    assert third.ran and third.previous_hash == first.output_hash
    assert third.output_hash != first.output_hash and third.output_hash == _lock_hash(ws)
    assert load_split(ws / "data" / "processed", "train").images.shape[1:] == (1, 12, 12)


def test_cache_links_the_data_instead_of_copying_it(tmp_path: Path) -> None:
    """DVC's large-data setting: each data shard and its cache entry are one file on disk (one inode), so
    the processed set costs its size once and no copy per run."""
    ws = data_workspace(tmp_path / "ws", tmp_path / "src", resolution=8)
    ingest_folder(image_folder(tmp_path / "src", per_class=6), ws / "data" / "raw" / "toy")
    dvc.add(ws, "data/raw/toy")
    dvc.repro(ws, "preprocess")
    cache = {p.stat().st_ino for p in (ws / ".dvc" / "cache").rglob("*") if p.is_file()}
    for folder, pattern in (("data/raw/toy", "*.tar"), ("data/processed", "*.npy")):
        shards = list((ws / folder).rglob(pattern))
        assert shards and all(p.stat().st_ino in cache for p in shards), folder


def test_concurrent_repro_and_add_wait_for_each_other(tmp_path: Path) -> None:
    """Two DVC steps at once in one workspace: the second waits (and says so) instead of crashing."""
    ws = data_workspace(tmp_path / "ws", tmp_path / "src", resolution=8)
    ingest_folder(image_folder(tmp_path / "src", per_class=4), ws / "data" / "raw" / "toy")
    ingest_folder(image_folder(tmp_path / "src2", per_class=4, seed=5), ws / "data" / "raw" / "extra")
    dvc.add(ws, "data/raw/toy")

    results: dict[str, object] = {}
    logs: list[str] = []

    def call(name: str, fn, *args) -> None:
        try:
            results[name] = fn(ws, *args, log=logs.append)
        except Exception as exc:  # recorded, so the assertion below shows it
            results[name] = exc

    threads = [
        threading.Thread(target=call, args=("repro", dvc.repro, "preprocess")),
        threading.Thread(target=call, args=("add", dvc.add, "data/raw/extra")),
    ]
    # Hold the workspace lock first, so both calls are certain to find it taken.
    with dvc.workspace_lock(ws):
        for t in threads:
            t.start()
        threads[0].join(1.5)
        assert all(t.is_alive() for t in threads) and not results  # both are waiting, neither failed
    for t in threads:
        t.join(300)
    assert len([m for m in logs if "waiting for it" in m]) >= 2
    assert isinstance(results["repro"], dvc.ReproResult) and results["repro"].ran, results["repro"]
    assert isinstance(results["add"], str) and (ws / "data/raw/extra.dvc").is_file(), results["add"]


def test_dvc_lock_held_outside_our_lock_makes_dvc_wait_not_crash(tmp_path: Path) -> None:
    """A user's own `dvc` command holds DVC's repo lock longer than DVC's 3 s retry window."""
    import zc.lockfile

    ws = data_workspace(tmp_path / "ws", tmp_path / "src", resolution=8)
    ingest_folder(image_folder(tmp_path / "src", per_class=2), ws / "data" / "raw" / "toy")
    results: list[object] = []

    def add() -> None:
        try:
            results.append(dvc.add(ws, "data/raw/toy"))
        except Exception as exc:
            results.append(exc)

    held = zc.lockfile.LockFile(str(ws / ".dvc" / "tmp" / "lock"))  # what every DVC process takes
    try:
        thread = threading.Thread(target=add)
        thread.start()
        thread.join(6)  # DVC alone gives up with "Unable to acquire lock" after ~3 s
        assert thread.is_alive() and not results, results
    finally:
        held.close()
    thread.join(120)
    assert len(results) == 1 and isinstance(results[0], str), results


def _hand_run_repro(ws: Path, seconds: int):
    """A `dvc repro` started by hand whose stage command runs ``seconds`` longer: returns once DVC is
    inside the stage, holding its data lock (.dvc/tmp/rwlock) but not the repo lock."""
    import os
    import subprocess
    import sys

    ingest_folder(image_folder(ws.parent / "src", per_class=4), ws / "data" / "raw" / "toy")
    dvc.add(ws, "data/raw/toy")
    spec = (ws / "dvc.yaml").read_text()
    (ws / "dvc.yaml").write_text(spec.replace("cmd: python", f"cmd: sleep {seconds} && python"))
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    hand = subprocess.Popen(
        [str(Path(sys.executable).with_name("dvc")), "repro", "preprocess"],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in hand.stdout:
        if "Running stage 'preprocess'" in line:
            return hand
    raise AssertionError(f"the hand-run repro ended early: {hand.wait()}")


def test_repro_waits_for_a_hand_run_repro_holding_the_data_then_proceeds(tmp_path: Path) -> None:
    ws = data_workspace(tmp_path / "ws", tmp_path / "src", resolution=8)
    hand = _hand_run_repro(ws, 4)
    logs: list[str] = []
    try:
        result = dvc.repro(ws, "preprocess", log=logs.append)
        assert hand.poll() is not None  # it returned only after the hand-run one had finished
    finally:
        hand.wait(120)
    assert hand.returncode == 0
    busy = [m for m in logs if "is busy, held by (PID " in m]
    assert len(busy) == 1 and f"(PID {hand.pid})" in busy[0] and "waiting up to 1800 s" in busy[0]
    assert result.output_hash == _lock_hash(ws) and not result.ran  # the hand-run already made this output


def test_repro_gives_up_after_the_busy_timeout_with_one_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(dvc.BUSY_TIMEOUT_ENV, "2")
    ws = data_workspace(tmp_path / "ws", tmp_path / "src", resolution=8)
    hand = _hand_run_repro(ws, 30)
    try:
        with pytest.raises(dvc.DvcError) as err:
            dvc.repro(ws, "preprocess")
        assert hand.poll() is None  # gave up while the other command still ran
    finally:
        hand.kill()
        hand.wait(30)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"`dvc repro preprocess` in {ws}: DVC's data stayed busy for ")
    assert f"(limit 2 s, GAN_DVC_BUSY_TIMEOUT), held by (PID {hand.pid}): " in msg
    assert msg.endswith(f"delete {ws / '.dvc' / 'tmp' / 'rwlock'})")


def test_the_committed_lock_records_the_stage_code_as_it_is() -> None:
    """The repository's dvc.lock names the processed data the shipped code makes (a fresh clone's `make run`
    relies on it); a code dep edited without re-running the stage would leave it describing older code."""
    repo = REPO_ROOT
    stage = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["preprocess"]
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["preprocess"]["deps"]
    code = [d for d in stage["deps"] if not d["path"].startswith("data/")]
    assert sorted(d["path"] for d in code) == sorted(p for p in declared if not p.startswith("data/"))
    for dep in code:
        data = (repo / dep["path"]).read_bytes()
        assert (hashlib.md5(data).hexdigest(), len(data)) == (dep["md5"], dep["size"]), (
            f"{dep['path']} changed since dvc.lock was written: re-run `dvc repro preprocess` on the digits"
        )
