"""FID sanity (Heusel et al. 2017, Fig. 1): with the domain backbone trained on digits, FID against the
validation split grows with the strength of each disturbance, and real-vs-real is far below any of it."""

from __future__ import annotations

import itertools

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

from ganlib.metrics import FeatureStats, frechet_distance


def noise(x: torch.Tensor, level: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return (x + level * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * round(3 * sigma) + 1
    return gaussian_blur(x, [size, size], [sigma, sigma])


def rectangles(x: torch.Tensor, side: int) -> torch.Tensor:
    # White (full ink) squares at random places: on digits the background is already black.
    gen = torch.Generator().manual_seed(2)
    out = x.clone()
    tops = torch.randint(0, 32 - side + 1, (len(x),), generator=gen)
    lefts = torch.randint(0, 32 - side + 1, (len(x),), generator=gen)
    for i, (top, left) in enumerate(zip(tops.tolist(), lefts.tolist(), strict=True)):
        out[i, :, top : top + side, left : left + side] = 1.0
    return out


DISTURBANCES = {
    "noise": (noise, [0.1, 0.25, 0.5, 1.0]),
    "blur": (blur, [0.5, 1.0, 2.0, 3.0]),
    "rectangles": (rectangles, [4, 8, 12, 16]),
}


@pytest.fixture(scope="module")
def scored(digits, digits_backbone):
    reference = FeatureStats.from_features(digits_backbone.features(digits.to_float(digits.val_u8)))
    train = digits.to_float(digits.train_u8)

    def fid(images: torch.Tensor) -> float:
        return frechet_distance(reference, FeatureStats.from_features(digits_backbone.features(images))).value

    return fid, train


@pytest.mark.parametrize("kind", sorted(DISTURBANCES))
def test_fid_grows_with_disturbance(scored, kind: str) -> None:
    fid, train = scored
    fn, levels = DISTURBANCES[kind]
    values = [fid(train)] + [fid(fn(train, level)) for level in levels]
    assert all(a < b for a, b in itertools.pairwise(values)), f"{kind}: {values}"
    assert values[0] * 5 < values[-1], f"{kind}: real-vs-real {values[0]:.3g} vs strongest {values[-1]:.3g}"


def test_real_vs_real_far_below_random_generator(scored) -> None:
    fid, train = scored
    gen = torch.Generator().manual_seed(3)
    random_images = torch.rand(train.shape, generator=gen) * 2 - 1  # an untrained generator's output: noise
    assert fid(train) * 20 < fid(random_images)
