"""Checkpoints that load with ``torch.load(weights_only=True)`` and are written atomically.

A checkpoint holds only tensors and plain Python types: model/optimizer state dicts, the EMA generator,
RNG states, the step, the model spec and the config as JSON text. It is written to a temp file and then
renamed, so a crash mid-write never replaces the last good checkpoint; the temp file a killed write
leaves behind is removed by the next run (``remove_stale_temps``).
"""

from __future__ import annotations

import os
import tempfile
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
