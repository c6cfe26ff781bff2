"""Helpers for the latent-tool tests (a unique module name: tests/ dirs are not packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from model_helpers import spread_generator
from torch import nn

from ganlib.models import ModelSpec
from ganlib.models.base import Generator

RES = 16
N_VAL = 200  # held-out digits: never seen in training


def digits_at(resolution: int = RES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 images [N, 1, R, R], labels, permutation): sklearn digits upscaled; the last ``N_VAL``
    indices of the seeded permutation are the held-out split."""
    from ganlib.data.sources import digits_images

    images, labels = digits_images()
    x = F.interpolate(
        torch.from_numpy(images).float()[:, None], size=(resolution, resolution), mode="bilinear"
    )
    x = x.clamp(0, 255).round().to(torch.uint8).numpy()
    return x, labels, np.random.default_rng(0).permutation(len(x))


def train_tiny_dcgan(out_dir: Path, steps: int = 200) -> Path:
    """An unconditional 16 px DCGAN trained ``steps`` steps on the non-held-out digits; its checkpoint."""
    from ganlib.config import parse_config
    from ganlib.data.shards import Split
    from ganlib.training import train

    x, labels, perm = digits_at()
    train_idx = perm[:-N_VAL]
    split = Split(
        images=x[train_idx], labels=labels[train_idx], meta={"class_names": [str(i) for i in range(10)]}
    )
    cfg = parse_config(
        {
            "name": "latent-test",
            "model": {"family": "dcgan", "z_dim": 16, "g_width": 16, "d_width": 16, "conditional": False},
            "train": {
                "steps": steps,
                "batch_size": 64,
                "device": "cpu",
                "checkpoint_every": steps,
                "log_every": steps,
                "ema_decay": 0.99,
                "seed": 0,
            },
        }
    )
    return train(cfg, split, out_dir, resume=False, progress=False).checkpoint


def random_generator(family: str, num_classes: int, resolution: int = RES, seed: int = 0) -> Generator:
    """A small generator whose images vary (see model_helpers)."""
    return spread_generator(num_classes, seed, family=family, resolution=resolution)


class TemplateGenerator(Generator):
    """A conditional 'generator' whose class decides the picture: tanh(3 * template[c] + 0.3 * A z).
    Class search in inpainting must find the template the known pixels came from."""

    def __init__(self, templates: torch.Tensor, z_dim: int = 4) -> None:
        super().__init__()
        k, c, h, _ = templates.shape
        self.spec = ModelSpec("dcgan", h, c, z_dim, k, 4, 4)
        self.templates = nn.Parameter(templates.clone(), requires_grad=False)
        self.mix = nn.Linear(z_dim, c * h * h, bias=False)

    def forward(self, z: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        assert class_id is not None
        return torch.tanh(3 * self.templates[class_id] + 0.3 * self.mix(z).view_as(self.templates[class_id]))
