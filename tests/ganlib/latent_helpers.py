"""Helpers for the latent-tool and inpainting tests (a unique module name: tests/ dirs are not packages)."""

from __future__ import annotations

import numpy as np
import torch
from ganlib_helpers import digits_split
from model_helpers import spread_generator
from torch import nn

from ganlib.models import ModelSpec
from ganlib.models.base import Generator

RES = 16
N_VAL = 200  # held-out digits: never seen in training


def digits_at(resolution: int = RES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 images [N, 1, R, R], labels, permutation): ``digits_split``'s digits; the last ``N_VAL``
    indices of the seeded permutation are the held-out split."""
    split = digits_split(resolution)
    return split.images, split.labels, np.random.default_rng(0).permutation(len(split.images))


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
