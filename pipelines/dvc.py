"""Running DVC stages from assets: one ``dvc repro`` at a time per workspace, hashes read from dvc.lock."""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml


class DvcError(RuntimeError):
    """A DVC command failed; the message is what to tell the user, ``log`` DVC's full output (if any)."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


@dataclass
class ReproResult:
    ran: bool  # False: DVC skipped the command (deps and params unchanged, or outputs restored from its run-cache)
    output_hash: str  # DVC's md5 of the stage's output (a directory hash ends with ".dir")
    log: str
    previous_hash: str | None = None  # the output hash in dvc.lock before this repro (None: first run)

    @property
    def up_to_date(self) -> bool:
        """Nothing changed: DVC skipped the stage and the output is the one dvc.lock already had."""
        return not self.ran and self.output_hash == self.previous_hash


def _env() -> dict[str, str]:
    # The stage command says `python`: make it this interpreter's, whatever PATH the launcher had.
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def _run(workspace: Path, args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("dvc")
    # --wait-for-lock: a DVC process outside our lock (a user's `dvc status`) makes DVC wait, not crash.
    cmd = [str(exe) if exe.exists() else "dvc", "--wait-for-lock", *args]
    return subprocess.run(cmd, cwd=workspace, env=_env(), capture_output=True, text=True, timeout=timeout)


# How long a DVC call waits while DVC's data lock (.dvc/tmp/rwlock) is held by another `dvc` process, e.g.
# a `dvc repro` started by hand: while its stage command runs DVC releases the repo lock (so
# --wait-for-lock does not help) but keeps the outputs locked, and a second repro fails with "is busy".
BUSY_TIMEOUT_ENV = "GAN_DVC_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT = 1800.0
_BUSY = re.compile(r"is busy, it is being blocked by:\s*\n\s*(\(PID \d+\): [^\n]*)")


def busy_timeout() -> float:
    return float(os.environ.get(BUSY_TIMEOUT_ENV, DEFAULT_BUSY_TIMEOUT))


def dvc(
    workspace: Path,
    *args: str,
    timeout: float = 3600,
    log: Callable[[str], None] | None = None,
    wait_busy: float | None = None,
    poll: float = 1.0,
) -> str:
    """Run one DVC command; while another DVC process holds the data it needs, wait (up to ``wait_busy``
    seconds, default ``$GAN_DVC_BUSY_TIMEOUT`` or 30 min), saying so once, then run it."""
    wait_busy = busy_timeout() if wait_busy is None else wait_busy
    start = time.monotonic()
    told = False
    while True:
        proc = _run(workspace, args, timeout)
        if proc.returncode == 0:
            return proc.stdout + proc.stderr
        busy = _BUSY.search(proc.stdout + proc.stderr)
        if busy is None:
            raise DvcError(
                f"`dvc {' '.join(args)}` failed in {workspace} (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
                log=proc.stdout + proc.stderr,
            )
        waited = time.monotonic() - start
        if waited >= wait_busy:
            raise DvcError(
                f"`dvc {' '.join(args)}` in {workspace}: DVC's data stayed busy for {waited:.0f} s "
                f"(limit {wait_busy:.0f} s, {BUSY_TIMEOUT_ENV}), held by {busy.group(1).strip()}; let that "
                f"command finish or stop it, then re-run (if no such process exists, delete "
                f"{Path(workspace) / '.dvc' / 'tmp' / 'rwlock'})"
            )
        if log and not told:
            log(
                f"DVC's data in {workspace} is busy, held by {busy.group(1).strip()}; "
                f"waiting up to {wait_busy:.0f} s for it"
            )
            told = True
        time.sleep(poll)


@contextmanager
def workspace_lock(
    workspace: Path, log: Callable[[str], None] | None = None, poll: float = 0.2, timeout: float | None = None
) -> Iterator[None]:
    """DVC locks the whole repo; instead of crashing on "Unable to acquire lock", wait our turn and say so.

    An OS file lock (``flock``) on a file in ``.dvc/tmp``: it serialises threads (each opens its own file
    description) and processes alike, and the OS frees it when a holder dies.
    """
    lock_path = Path(workspace) / ".dvc" / "tmp" / "dagster-repro.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as fh:
        start, told = time.monotonic(), False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if log and not told:
                    log(f"another DVC step holds {workspace}; waiting for it")
                    told = True
                if timeout is not None and time.monotonic() - start > timeout:
                    raise DvcError(
                        f"another DVC step held {workspace} for more than {timeout:.0f} s"
                    ) from None
                time.sleep(poll)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def stage_output_hash(workspace: Path, stage: str) -> str | None:
    """The md5 of the stage's first output in dvc.lock (a directory hash ends with ".dir"); None before a run."""
    lock_file = Path(workspace) / "dvc.lock"
    if not lock_file.is_file():
        return None
    stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
    if stage not in stages:
        return None
    return stages[stage]["outs"][0]["md5"]


def _stage_error(stage: str, error: DvcError) -> DvcError:
    """A stage command that explains its own failure prints one ``<stage>: error: ...`` line: that line is
    the message (DVC's whole output stays in ``log``)."""
    for line in error.log.splitlines():
        if line.startswith(f"{stage}: error: "):
            return DvcError(f"`dvc repro {stage}` failed: {line[len(stage) + 9 :]}", log=error.log)
    return error


def repro(workspace: Path, stage: str, log: Callable[[str], None] | None = None) -> ReproResult:
    with workspace_lock(workspace, log):
        before = stage_output_hash(workspace, stage)
        try:
            out = dvc(workspace, "repro", stage, log=log)
        except DvcError as exc:
            raise _stage_error(stage, exc) from None
        after = stage_output_hash(workspace, stage)
    if after is None:
        raise DvcError(
            f"`dvc repro {stage}` left no output hash for {stage!r} in {workspace}/dvc.lock:\n{out}"
        )
    # DVC prints "Running stage 'x'" only when it executes the command; a skip says "didn't change", and a
    # run-cache hit ("is cached - skipping run") restores earlier outputs without running.
    return ReproResult(
        ran=f"Running stage '{stage}'" in out, output_hash=after, log=out, previous_hash=before
    )


def add(workspace: Path, target: str, log: Callable[[str], None] | None = None) -> str:
    """``dvc add`` a raw-data folder; returns its md5 (the raw data version)."""
    with workspace_lock(workspace, log):
        dvc(workspace, "add", "-q", target, log=log)
    meta = yaml.safe_load((Path(workspace) / f"{target}.dvc").read_text())
    return meta["outs"][0]["md5"]


def push(workspace: Path, log: Callable[[str], None] | None = None) -> str:
    """``dvc push`` to the default remote: the raw data and every stage output of the workspace."""
    with workspace_lock(workspace, log):
        return dvc(workspace, "push", log=log)


def pull(workspace: Path, log: Callable[[str], None] | None = None) -> str:
    with workspace_lock(workspace, log):
        return dvc(workspace, "pull", log=log)


def default_remote(workspace: Path) -> str | None:
    """The name of the default remote (what a bare ``dvc push`` uses), or None.

    Read with DVC's own config loader (system, global, repo and local levels, as ``dvc remote default``
    does) in this process: starting a DVC process only to ask costs a second on every run.
    """
    from dvc.config import Config

    config = Config(dvc_dir=str(Path(workspace) / ".dvc"), validate=False)
    return config.get("core", {}).get("remote") or None


def workspace_files(source_root: Path) -> list[str]:
    """Files a workspace needs besides data: the DVC pipeline, its params, and its stages' code deps, as
    dvc.yaml lists them (the one list: a dep added there is copied too)."""
    stages = yaml.safe_load((source_root / "dvc.yaml").read_text())["stages"]
    code = [dep for stage in stages.values() for dep in stage.get("deps", []) if not dep.startswith("data/")]
    return ["dvc.yaml", "params.yaml", *dict.fromkeys(code)]


def init_workspace(path: Path, source_root: Path) -> Path:
    """Make ``path`` a git + DVC workspace with this project's data pipeline (for tests and new projects).

    The stage's code deps are copied, and the stage runs those copies by path (see dvc.yaml), so the code
    DVC hashes is the code that runs.
    """
    import shutil

    path.mkdir(parents=True, exist_ok=True)
    for rel in workspace_files(source_root):
        dest = path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source_root / rel, dest)
    # Run outputs and ingestion's staging folders are never versioned (DVC ignores its own data outputs).
    (path / ".gitignore").write_text(
        "/outputs/\n/data/raw/*.partial/\n/data/raw/*.old/\n/data/raw/*.download/\n/data/torchvision/\n"
        "/data/processed.tmp/\n"
    )
    if not (path / ".git").exists():
        subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    if not (path / ".dvc").exists():
        dvc(path, "init", "-q")
        configure_dvc(path)
    return path


def configure_dvc(path: Path) -> None:
    """A new workspace's DVC settings: `dvc add` stages its own .dvc files (autostage); and DVC's settings for
    large data (its "Large Dataset Optimization" guide): the cache hard-links files into the workspace
    instead of copying them (a 1.2 GB processed set no longer takes 2.4 GB and a copy per run; DVC makes
    linked files read-only, and the stages only ever write new files), falling back to copies where the
    cache is on another file system; and hashes with every core of this machine (DVC's default is half of
    them; the setting is local, not versioned, as the core count is per machine)."""
    from ganlib.data.parallel import available_cpus

    # Written directly, in the format `dvc config` writes: a DVC process per setting costs a second each.
    with open(path / ".dvc" / "config", "a") as fh:
        fh.write("[core]\n    autostage = true\n[cache]\n    type = hardlink,copy\n")
    jobs = max(1, min(8, available_cpus()))
    with open(path / ".dvc" / "config.local", "a") as fh:
        fh.write(f"[core]\n    checksum_jobs = {jobs}\n")
