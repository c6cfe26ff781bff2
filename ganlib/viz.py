"""Pictures people would rather look at than read: sample grids and loss curves (PNG files).

numpy at import time only (PIL and matplotlib load inside the functions), so the torch-free consumer
(``ganlib.serving``) uses the same grid code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .pixels import to_uint8


def grid_nhwc(
    images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 0
) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 [H', W', C] picture, ``nrow`` images per row (default ~sqrt(N))."""
    n, h, w, c = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    out = np.full((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), pad_value, np.uint8)
    for i, img in enumerate(images):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        out[y : y + h, x : x + w] = img
    return out


def grid(images_uint8: np.ndarray, nrow: int = 10, pad: int = 2) -> np.ndarray:
    """uint8 NCHW -> one uint8 HxWxC (or HxW for one channel) picture with ``nrow`` images per row."""
    out = grid_nhwc(images_uint8.transpose(0, 2, 3, 1), nrow, pad)
    return out[:, :, 0] if out.shape[2] == 1 else out


def save_grid(images: np.ndarray, path: str | Path, nrow: int = 10, scale: int = 2) -> Path:
    """Save NCHW images (uint8, or float in [-1, 1]) as a PNG grid, upscaled ``scale`` x for viewing."""
    from PIL import Image

    arr = images if images.dtype == np.uint8 else to_uint8(images)
    pic = Image.fromarray(grid(arr, nrow))
    if scale > 1:
        pic = pic.resize((pic.width * scale, pic.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pic.save(path)
    return path


def save_rows(rows: list[np.ndarray], path: str | Path, min_size: int = 64, gap: int = 2) -> Path:
    """Rows of equally sized uint8 [N, H, W, C] images (C = 1 or 3), one row per array, as an RGB PNG.

    The gap is blue: a white or black one would hide bright or dark artifacts at image borders. Tiny
    images get a nearest-neighbour zoom to at least ``min_size`` pixels.
    """
    from PIL import Image

    n, h, w, _ = rows[0].shape
    canvas = np.empty((len(rows) * (h + gap) - gap, n * (w + gap) - gap, 3), dtype=np.uint8)
    canvas[:] = (70, 130, 230)
    for r, imgs in enumerate(rows):
        for i, img in enumerate(imgs):
            rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]
            canvas[r * (h + gap) : r * (h + gap) + h, i * (w + gap) : i * (w + gap) + w] = rgb
    scale = max(1, math.ceil(min_size / h))
    pic = Image.fromarray(canvas)
    pic = pic.resize((pic.width * scale, pic.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pic.save(path)
    return path


def save_loss_plot(history: dict[str, list[float]], path: str | Path, title: str = "training losses") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    for key in ("loss_d", "loss_g"):
        if history.get(key):
            ax.plot(history["step"], history[key], label=key)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def save_score_history(
    runs: list[dict[str, float]], path: str | Path, label: str = "FID", title: str = "FID over evaluations"
) -> Path:
    """One point per evaluation (oldest first) with its 95% interval, and the real floor as a line.

    ``runs``: dicts with ``value``, ``low``, ``high`` and optionally ``floor``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    x = np.arange(1, len(runs) + 1)
    values = np.array([r["value"] for r in runs], dtype=float)
    low = values - np.array([r.get("low", r["value"]) for r in runs], dtype=float)
    high = np.array([r.get("high", r["value"]) for r in runs], dtype=float) - values
    ax.errorbar(x, values, yerr=[low, high], fmt="o-", capsize=3, label=f"{label} (95% interval)")
    floors = [r.get("floor") for r in runs]
    if any(f is not None for f in floors):
        ax.plot(x, [np.nan if f is None else f for f in floors], "--", color="gray", label="real floor")
    ax.set_xlabel("evaluation (oldest to newest)")
    ax.set_xticks(x)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Lay out, write and close a matplotlib figure (closing frees it: the pipeline draws many)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
