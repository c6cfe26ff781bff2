"""Which torch device runs the work: one rule for training, evaluation and the pipeline's compute resource."""

from __future__ import annotations

import torch


def select_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """CUDA when present (``auto``), else CPU; under torchrun each rank takes GPU ``LOCAL_RANK``.
    Raises ``RuntimeError`` when CUDA is demanded but absent."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "the device is 'cuda' but no CUDA device is visible to this process; use 'auto' or 'cpu'"
        )
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device("cuda", local_rank) if requested == "cuda" else torch.device("cpu")
