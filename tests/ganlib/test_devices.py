"""Device selection: auto picks CUDA when present; demanding an absent one says so."""

from __future__ import annotations

import pytest
import torch

from ganlib.devices import select_device


def test_device_selection() -> None:
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            select_device("cuda")
