"""Start `dagster dev` (webserver + daemon) on a loopback port for end-to-end tests, and stop it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from loopback import free_port

from pipelines.resources import REPO_ROOT


@dataclass(frozen=True)
class DagsterDev:
    url: str
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]


@contextlib.contextmanager
def dagster_dev(
    home: Path, env: dict[str, str], log: Path, startup_timeout: float = 120.0
) -> Iterator[DagsterDev]:
    """`dagster dev` in the repo (as `make ui`: module and location name from pyproject's [tool.dagster]) with
    DAGSTER_HOME=home; yields once the UI answers."""
    port = free_port()
    full_env = {**os.environ, **env, "DAGSTER_HOME": str(home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    full_env.pop("GAN_EXECUTOR", None)  # the default executor: runs are subprocesses here
    cmd = [
        str(Path(sys.executable).with_name("dagster")),
        "dev",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with log.open("w") as out:
        # Own process group: the daemon, webserver and code server are its children and stop with it.
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = DagsterDev(url=f"http://127.0.0.1:{port}", log=log)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {proc.returncode}:\n{server.log_tail()}")
            try:
                if requests.get(f"{server.url}/server_info", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"dagster dev did not answer in {startup_timeout:.0f}s:\n{server.log_tail()}"
                )
            time.sleep(0.5)
        yield server
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen, grace: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # dagster dev shuts its children down on SIGTERM
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
