"""Training as a torchrun job: K processes on this node (DDP), launched and read back by a caller such as
the ``trained_generator`` asset. The job runs exactly ``ganlib.train_cli`` (the entrypoint a multi-node
Kubernetes Job runs too), with the caller's full config written next to the checkpoint.
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
from .training import TrainResult


class TorchrunFailed(RuntimeError):
    """The torchrun job exited with an error; the message holds the end of its output."""


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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = out_dir / "torchrun-config.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
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
    summary = json.loads(next(line for line in reversed(lines) if line.startswith('{"checkpoint"')))
    history = json.loads((out_dir / "history.json").read_text())
    return TrainResult(
        checkpoint=Path(summary["checkpoint"]),
        steps=summary["steps"],
        device=f"{summary['device']} x{summary['world_size']} (torchrun)",
        images_per_sec=summary["images_per_sec"],
        resumed_from=summary["resumed_from"],
        history=history,
    )
