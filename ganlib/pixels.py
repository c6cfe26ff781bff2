"""The one place pixel values change range: uint8 [0, 255] <-> float [-1, 1], the range every generator,
discriminator and feature backbone here works in. numpy at import time only; torch tensors are handled
where they are passed in, so the torch-free consumer can use it too."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_model_range(images: Any) -> Any:
    """uint8 [0, 255] -> float32 [-1, 1], in the caller's library (numpy array in, numpy out; tensor in,
    tensor out, on the tensor's device)."""
    if isinstance(images, np.ndarray):
        return images.astype(np.float32) / 127.5 - 1.0
    return images.float().div(127.5).sub_(1.0)  # div makes a new tensor: the caller's is never changed


def to_uint8(images: Any) -> np.ndarray:
    """float [-1, 1] (numpy array or tensor, any layout) -> uint8 numpy, same layout: clipped, rounded half
    to even."""
    if not isinstance(images, np.ndarray):
        images = images.detach().float().cpu().numpy()
    x = np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 127.5, 0, 255)
    return np.rint(x).astype(np.uint8)
