"""Train a GAN from the command line: one process, or one process per GPU under torchrun (DDP).

Single process (CPU, or one GPU when present):
    python -m ganlib.train_cli --config dcgan --data data/processed --out outputs/dcgan
Multi-GPU on one machine (G and D are wrapped in DDP; each rank trains on a disjoint slice of every batch,
``train.batch_size`` stays the global batch size, and only rank 0 writes checkpoints):
    torchrun --nproc_per_node=4 -m ganlib.train_cli --config dcgan --data data/processed --out outputs/dcgan
Override config keys with YAML values (validated like the file):
    python -m ganlib.train_cli --config sngan --set train.steps=500 --set loss.kind=hinge ...

Re-running with the same ``--out`` resumes from ``checkpoint.pt`` (``--no-resume`` starts over).
NCCL is used on GPUs and gloo on CPUs (``--backend`` overrides).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

SUMMARY = "train-summary.json"  # rank 0's result, written next to the checkpoint


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ganlib.train_cli", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="default", help="a name under configs/ or a YAML path")
    ap.add_argument("--data", default="data/processed", help="processed dataset root (meta.json + shards)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--out", required=True, help="output folder (checkpoint.pt, history.json)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--no-resume", action="store_true")
    ap.add_argument("--backend", choices=["nccl", "gloo"], default=None)
    args = ap.parse_args(argv)

    import torch
    import torch.distributed as dist

    from .config import ConfigError, load_config, parse_overrides
    from .data.shards import load_split
    from .training import NonFiniteLossError, train

    try:  # validate everything before touching data or devices
        cfg = load_config(args.config, parse_overrides(args.overrides))
    except ConfigError as err:
        raise SystemExit(str(err)) from None
    data = load_split(args.data, args.split)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        use_cuda = cfg.train.device != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=args.backend or ("nccl" if use_cuda else "gloo"))
    try:
        # The progress bar only on a terminal: in logs it is noise around the one line that matters.
        result = train(cfg, data, args.out, resume=not args.no_resume, progress=sys.stderr.isatty())
    except (NonFiniteLossError, ValueError) as err:  # ValueError: settings this data or world cannot take
        raise SystemExit(str(err)) from None  # one line, no traceback: the message says where and what
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:  # one line per rank: ranks (on any node) that stayed in sync print the same digest
        print(json.dumps({"rank": rank, "generator_sha256": parameters_sha256(result.generator)}), flush=True)
    if rank == 0:
        summary = {
            "checkpoint": str(result.checkpoint),
            "steps": result.steps,
            "resumed_from": result.resumed_from,
            "device": result.device,
            "world_size": world,
            "images_per_sec": round(result.images_per_sec, 1),
        }
        (result.checkpoint.parent / "history.json").write_text(json.dumps(result.history))
        # On the shared --out too: a launcher that never sees this process's stdout (a Kubernetes Job's pods)
        # reads the result from there (ganlib.distributed_launch.read_torchrun_result).
        (result.checkpoint.parent / SUMMARY).write_text(json.dumps(summary))
        print(json.dumps(summary))
    return 0


def parameters_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's parameters (names, dtypes, shapes and bytes, in name order)."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    raise SystemExit(main())
