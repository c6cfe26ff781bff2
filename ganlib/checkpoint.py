"""Checkpoints that load with ``torch.load(weights_only=True)`` and are written atomically.

A checkpoint holds only tensors and plain Python types: model/optimizer state dicts, the EMA generator,
RNG states, the step, the model spec and the config as JSON text. It is written to a temp file and then
renamed, so a crash mid-write never replaces the last good checkpoint; the temp file a killed write
leaves behind is removed by the next run (``remove_stale_temps``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temp_pattern(path).split("*")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _temp_pattern(path: Path) -> str:
    return f".{path.name}.*.tmp"  # what save_checkpoint's mkstemp names look like


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete the temp files of writes of ``path`` that were killed (SIGKILL, OOM) before their rename.

    Call it before training starts in an output folder: only one trainer writes there at a time (the
    ``gpu`` pool), so any such file is left over from a dead process. Returns what was removed.
    """
    path = Path(path)
    removed = []
    for tmp in sorted(path.parent.glob(_temp_pattern(path))):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- the training loop's state: what a checkpoint holds so a resumed run continues exactly ---------------


@dataclass
class TrainingModules:
    """The objects whose state a training checkpoint carries."""

    generator: torch.nn.Module
    discriminator: torch.nn.Module
    generator_ema: torch.nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler


def training_state(
    step: int,
    model_spec: dict[str, Any],
    config_json: str,
    m: TrainingModules,
    rngs: list[dict[str, Any]],
    history: dict[str, list[float]],
) -> dict[str, Any]:
    """The checkpoint dict at ``step``; ``rngs`` holds every rank's RNG state (rank 0's first)."""
    state: dict[str, Any] = {
        "step": step,
        "model_spec": model_spec,
        "config": config_json,
        "generator": m.generator.state_dict(),
        "discriminator": m.discriminator.state_dict(),
        "generator_ema": m.generator_ema.state_dict(),
        "opt_g": m.opt_g.state_dict(),
        "opt_d": m.opt_d.state_dict(),
        "scaler": m.scaler.state_dict(),
        "rng": rngs[0],
        "history": json.dumps(history),
    }
    if len(rngs) > 1:
        state["rng_per_rank"] = [
            {k: v.cpu() if torch.is_tensor(v) else v for k, v in r.items()} for r in rngs
        ]
    return state


def restore_training(
    path: Path, model_spec: dict[str, Any], m: TrainingModules, tc: Any, rank: int, world: int
) -> tuple[int, dict[str, list[float]]]:
    """Load a training checkpoint into ``m`` (learning rates and betas come from ``tc``, the config in force)
    and this rank's RNG stream; returns (step, loss history). Refuses a checkpoint of another model."""
    state = load_checkpoint(path, map_location="cpu")  # RNG states must stay CPU tensors
    if state["model_spec"] != model_spec:
        raise ValueError(
            f"{path} was trained with a different model ({state['model_spec']}); use a new out_dir"
        )
    m.generator.load_state_dict(state["generator"])
    m.discriminator.load_state_dict(state["discriminator"])
    m.generator_ema.load_state_dict(state["generator_ema"])
    m.opt_g.load_state_dict(state["opt_g"])
    m.opt_d.load_state_dict(state["opt_d"])
    for opt, lr in ((m.opt_g, tc.lr_g), (m.opt_d, tc.lr_d)):  # the config, not the checkpoint, sets them
        for group in opt.param_groups:
            group["lr"], group["betas"] = lr, tc.betas
    m.scaler.load_state_dict(state.get("scaler", {}))
    rngs = state.get("rng_per_rank") or [state["rng"]]
    if len(rngs) == world:
        set_rng_state(rngs[rank])
    else:  # a different number of processes: a fresh, still deterministic, stream per rank
        torch.manual_seed(tc.seed * 7919 + 1 + rank + world * int(state["step"]))
    return int(state["step"]), json.loads(state["history"])
