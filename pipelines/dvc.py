"""Running DVC stages from assets: one ``dvc repro`` at a time per workspace, hashes read from dvc.lock."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml


class DvcError(RuntimeError):
    pass


@dataclass
class ReproResult:
    ran: bool  # False: DVC found deps and params unchanged and skipped the stage
    output_hash: str  # DVC's md5 of the stage's output (a directory hash ends with ".dir")
    log: str


def _env() -> dict[str, str]:
    # The stage command says `python`: make it this interpreter's, whatever PATH the launcher had.
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def dvc(workspace: Path, *args: str, timeout: float = 3600) -> str:
    exe = Path(sys.executable).with_name("dvc")
    cmd = [str(exe) if exe.exists() else "dvc", *args]
    proc = subprocess.run(cmd, cwd=workspace, env=_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise DvcError(f"`dvc {' '.join(args)}` failed in {workspace} (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout + proc.stderr


@contextmanager
def workspace_lock(workspace: Path, log=None, poll: float = 2.0) -> Iterator[None]:
    """DVC locks the whole repo; instead of crashing on "Unable to acquire lock", wait our turn and say so."""
    lock_path = workspace / ".dvc" / "tmp" / "dagster-repro.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        waited = 0.0
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if log and waited == 0:
                    log(f"another DVC step holds {workspace}; waiting for it")
                time.sleep(poll)
                waited += poll
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def stage_output_hash(workspace: Path, stage: str) -> str:
    lock = yaml.safe_load((workspace / "dvc.lock").read_text())
    outs = lock["stages"][stage]["outs"]
    return outs[0]["md5"]


def repro(workspace: Path, stage: str, log=None) -> ReproResult:
    with workspace_lock(workspace, log):
        out = dvc(workspace, "repro", stage)
    # DVC prints "Running stage 'x'" only when it executes the command; a skip says "didn't change".
    return ReproResult(ran=f"Running stage '{stage}'" in out, output_hash=stage_output_hash(workspace, stage), log=out)


def add(workspace: Path, target: str, log=None) -> str:
    """``dvc add`` a raw-data folder; returns its md5 (the raw data version)."""
    with workspace_lock(workspace, log):
        dvc(workspace, "add", "-q", target)
    meta = yaml.safe_load((workspace / f"{target}.dvc").read_text())
    return meta["outs"][0]["md5"]


def push(workspace: Path, log=None) -> str:
    with workspace_lock(workspace, log):
        return dvc(workspace, "push")


def has_remote(workspace: Path) -> bool:
    return bool(dvc(workspace, "remote", "list").strip())


# Files a workspace needs besides data: the DVC pipeline, its params, and the stage's code deps.
WORKSPACE_FILES = ("dvc.yaml", "params.yaml", "ganlib/data/preprocess.py", "ganlib/data/shards.py")


def init_workspace(path: Path, source_root: Path) -> Path:
    """Make ``path`` a git + DVC workspace with this project's data pipeline (for tests and new projects).

    The stage's code deps are copied so that DVC hashes them there; the stage itself runs the installed
    ``ganlib``.
    """
    import shutil

    path.mkdir(parents=True, exist_ok=True)
    for rel in WORKSPACE_FILES:
        dest = path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source_root / rel, dest)
    (path / ".gitignore").write_text("/outputs/\n")
    if not (path / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    if not (path / ".dvc").exists():
        dvc(path, "init", "-q")
        dvc(path, "config", "core.autostage", "true")
    return path
