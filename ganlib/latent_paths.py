"""Paths between two latents, in float64 numpy: the one implementation behind both the PyTorch latent
tools (``ganlib.latent``) and the torch-free consumer (``ganlib.serving``), so both walk the same path."""

from __future__ import annotations

import numpy as np


def lerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[D], [D], [T] -> [T, D]: the straight line from ``z0`` (t=0) to ``z1`` (t=1)."""
    t = np.asarray(t, np.float64)[:, None]
    return (1 - t) * np.asarray(z0, np.float64) + t * np.asarray(z1, np.float64)


def slerp(z0: np.ndarray, z1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[D], [D], [T] -> [T, D] along the great circle (White 2016): Gaussian latents concentrate near a
    sphere, and a straight line between two of them cuts through its low-density interior. Falls back to
    lerp when the latents are (nearly) parallel."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    cos = np.dot(z0, z1) / (np.linalg.norm(z0) * np.linalg.norm(z1) + 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return lerp(z0, z1, t)
    t = np.asarray(t, np.float64)[:, None]
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)


def interpolation_path(z0: np.ndarray, z1: np.ndarray, steps: int, spherical: bool = True) -> np.ndarray:
    """``steps`` latents (float32 [steps, D]) evenly spaced in t from ``z0`` to ``z1``, endpoints included."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    z0, z1 = np.ravel(z0), np.ravel(z1)
    if z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 differ in shape: {list(z0.shape)} vs {list(z1.shape)}")
    t = np.linspace(0.0, 1.0, steps)
    return (slerp if spherical else lerp)(z0, z1, t).astype(np.float32)
