"""The torchrun command line that trains with ``ganlib.train_cli``: one node (``--standalone``) or node
``r`` of ``N`` with c10d rendezvous (what each pod of the multi-node Kubernetes Job runs). Torch-free, so the
Kubernetes manifests can be rendered where torch is not installed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

RDZV_PORT = 29400  # torchrun's default c10d port


@dataclass(frozen=True)
class Rendezvous:
    """Where the nodes of one multi-node job meet. ``node_rank`` is an int, or a string the launcher
    expands, such as Kubernetes' ``$(JOB_COMPLETION_INDEX)``."""

    nnodes: int
    node_rank: int | str
    endpoint: str  # HOST:PORT of the c10d store, on node 0
    run_id: str

    def __post_init__(self) -> None:
        if self.nnodes < 2:
            raise ValueError(f"a multi-node rendezvous needs nnodes >= 2, got {self.nnodes}")
        if isinstance(self.node_rank, int) and not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"node_rank {self.node_rank} is outside 0..{self.nnodes - 1}")
        host, _, port = self.endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"rendezvous endpoint must be HOST:PORT, got {self.endpoint!r}")


def torchrun_command(
    nproc: int,
    config: str | Path,
    data: str | Path,
    out: str | Path,
    backend: str | None = None,
    *,
    rendezvous: Rendezvous | None = None,
    python: str = sys.executable,
) -> list[str]:
    """torchrun with ``nproc`` processes on this node running ``ganlib.train_cli``: ``--standalone``
    (rendezvous on a free local port) without ``rendezvous``, else this node's part of a multi-node job."""
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    cmd = [python, "-m", "torch.distributed.run"]
    if rendezvous is None:
        cmd += ["--standalone"]
    else:
        r = rendezvous
        cmd += [f"--nnodes={r.nnodes}", f"--node_rank={r.node_rank}", "--rdzv_backend=c10d"]
        cmd += [f"--rdzv_endpoint={r.endpoint}", f"--rdzv_id={r.run_id}"]
    cmd += [f"--nproc_per_node={nproc}"]
    cmd += ["-m", "ganlib.train_cli", "--config", str(config), "--data", str(data), "--out", str(out)]
    return cmd + (["--backend", backend] if backend else [])
