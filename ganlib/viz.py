"""Pictures people would rather look at than read: sample grids and loss curves (PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] float NCHW -> uint8 NCHW."""
    return np.clip((np.asarray(images, dtype=np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def grid(images_uint8: np.ndarray, nrow: int = 10, pad: int = 2) -> np.ndarray:
    """uint8 NCHW -> one uint8 HxWxC (or HxW) picture with ``nrow`` images per row."""
    n, c, h, w = images_uint8.shape
    rows = (n + nrow - 1) // nrow
    out = np.zeros((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[:, y : y + h, x : x + w] = images_uint8[i]
    return out[0] if c == 1 else out.transpose(1, 2, 0)


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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
