"""Shared helpers for the ganlib tests: real digits at small resolutions, a tiny fast config, a tiny trained
DCGAN and a processed dataset on disk.

(A plain module, not conftest.py: other test folders have their own conftest, and ``from conftest import``
would pick whichever was imported first.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganlib.config import GANConfig, parse_config
from ganlib.data.shards import Split

torch.set_num_threads(1)  # the test machine's cores are shared; tiny models gain nothing from threads


def digits_split(resolution: int = 16, n: int | None = None) -> Split:
    """scikit-learn's 8x8 digits, bilinearly upscaled to ``resolution``, as a labelled Split."""
    from ganlib.data.sources import digits_images

    images, labels = digits_images()
    if n is not None:
        images, labels = images[:n], labels[:n]
    x = torch.from_numpy(images).float()[:, None]
    x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    up = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return Split(images=up, labels=labels.astype(np.int64), meta={"class_names": [str(i) for i in range(10)]})


def tiny_config(**sections: dict[str, Any]) -> GANConfig:
    """A config small enough to train for a few steps in well under a second per step on one CPU core."""
    base: dict[str, Any] = {
        "name": "tiny",
        "model": {"family": "dcgan", "z_dim": 8, "g_width": 8, "d_width": 8},
        "train": {
            "steps": 4,
            "batch_size": 16,
            "checkpoint_every": 2,
            "log_every": 1,
            "device": "cpu",
            "seed": 0,
        },
    }
    for key, values in sections.items():
        base[key] = {**base.get(key, {}), **values}
    return parse_config(base)


def write_processed(root: Path, resolution: int = 16, n: int = 64) -> Path:
    """``digits_split`` written as a processed dataset (shards + meta.json), what ``train_cli --data`` reads."""
    from ganlib.data.shards import write_split

    data = digits_split(resolution, n=n)
    write_split(root, "train", data.images, data.labels)
    meta = {"class_names": [str(i) for i in range(10)], "resolution": resolution, "channels": 1}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def train_tiny_dcgan(
    out_dir: Path, split: Split, *, steps: int, batch_size: int, conditional: bool | str = "auto"
) -> Path:
    """A 16-wide DCGAN (z_dim 16, EMA decay 0.99) trained ``steps`` steps on ``split``; its checkpoint."""
    from ganlib.training import train

    cfg = tiny_config(
        model={"z_dim": 16, "g_width": 16, "d_width": 16, "conditional": conditional},
        train={
            "steps": steps,
            "batch_size": batch_size,
            "checkpoint_every": steps,
            "log_every": steps,
            "ema_decay": 0.99,
        },
    )
    return train(cfg, split, out_dir, resume=False, progress=False).checkpoint
