"""Training as a torchrun job: K processes on this node (DDP), launched and read back by a caller such as
the ``trained_generator`` asset. The job runs exactly ``ganlib.train_cli`` (the entrypoint a multi-node
Kubernetes Job runs too), with the caller's full config written next to the checkpoint; the result is read
back from that folder (``read_torchrun_result``), which is how a multi-node launcher reads it too.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from .config import GANConfig
from .torchrun import torchrun_command
from .train_cli import SUMMARY
from .training import TrainResult


class TorchrunFailed(RuntimeError):
    """The torchrun job exited with an error; the message holds the end of its output."""


def write_torchrun_config(cfg: GANConfig, out_dir: str | Path) -> Path:
    """The full config the job's processes load (``--config``), next to the checkpoint; a stale result from
    an earlier job in the same folder is removed so it can never be read as this job's."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / SUMMARY).unlink(missing_ok=True)
    config = out_dir / "torchrun-config.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return config


def read_torchrun_result(out_dir: str | Path, world_size: int, launcher: str = "torchrun") -> TrainResult:
    """Rank 0's summary and loss history as written to ``out_dir`` by ``ganlib.train_cli`` (wherever its
    processes ran: here, or on other machines sharing the folder), checked to come from a job of
    ``world_size`` processes."""
    out_dir = Path(out_dir)
    path = out_dir / SUMMARY
    if not path.is_file():
        raise TorchrunFailed(f"the training job ended without writing {path}: rank 0 did not finish")
    summary = json.loads(path.read_text())
    if summary["world_size"] != world_size:
        raise TorchrunFailed(
            f"{path} comes from a job of {summary['world_size']} processes, expected {world_size}"
        )
    return TrainResult(
        # The folder as this process sees it: the job's processes may have mounted it at another path.
        checkpoint=out_dir / Path(summary["checkpoint"]).name,
        steps=summary["steps"],
        device=f"{summary['device']} x{world_size} ({launcher})",
        images_per_sec=summary["images_per_sec"],
        resumed_from=summary["resumed_from"],
        history=json.loads((out_dir / "history.json").read_text()),
    )


def train_with_torchrun(
    cfg: GANConfig,
    data: str | Path,
    out_dir: str | Path,
    nproc: int,
    *,
    backend: str | None = None,
    log: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> TrainResult:
    """Train ``cfg`` on ``data`` with ``nproc`` DDP processes (gloo on CPU, NCCL on GPUs); resumes like
    ``train``. Returns rank 0's summary as a ``TrainResult`` (without live models: read the checkpoint)."""
    config = write_torchrun_config(cfg, out_dir)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cmd = torchrun_command(nproc, config, data, out_dir, backend)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip())
        if log and line.strip() and not line.startswith("{"):
            log(line.rstrip())
    if proc.wait(timeout) != 0:
        tail = "\n".join(lines[-40:])
        raise TorchrunFailed(f"torchrun with {nproc} processes failed (exit {proc.returncode}):\n{tail}")
    return read_torchrun_result(out_dir, nproc)
