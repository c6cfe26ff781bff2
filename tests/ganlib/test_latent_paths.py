"""Interpolation paths and latent arithmetic: the math, and the images the generator makes along them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from latent_helpers import random_generator
from PIL import Image

from ganlib import serving
from ganlib.latent import (
    arithmetic_samples,
    interpolate,
    interpolation_path,
    latent_arithmetic,
    save_interpolation_strip,
)


def _pair(dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(dim, generator=g), torch.randn(dim, generator=g)


def test_linear_path_is_evenly_spaced_with_endpoints():
    z0, z1 = _pair()
    path = interpolation_path(z0, z1, 5, spherical=False)
    assert path.shape == (5, 16) and path.dtype == torch.float32
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)
    torch.testing.assert_close(path[2], (z0 + z1) / 2)
    steps = (path[1:] - path[:-1]).norm(dim=1)
    torch.testing.assert_close(steps, steps[0].expand(4))


def test_spherical_path_keeps_norm_and_constant_angle():
    z0, z1 = _pair(64)
    z1 = z1 * z0.norm() / z1.norm()  # same radius: the path must stay on that sphere
    path = interpolation_path(z0, z1, 9).double()
    torch.testing.assert_close(path.norm(dim=1), z0.norm().double().expand(9), rtol=1e-5, atol=1e-5)
    unit = path / path.norm(dim=1, keepdim=True)
    angles = torch.arccos((unit[1:] * unit[:-1]).sum(1).clamp(-1, 1))
    torch.testing.assert_close(angles, angles[0].expand(8), rtol=1e-4, atol=1e-6)
    # A straight line between the same points dips inside the sphere; the great circle does not.
    assert interpolation_path(z0, z1, 9, spherical=False)[4].norm() < 0.9 * z0.norm()


def test_spherical_path_of_parallel_latents_falls_back_to_lerp():
    z0 = torch.ones(8)
    path = interpolation_path(z0, 3 * z0, 3)
    torch.testing.assert_close(path[1], 2 * z0)


@pytest.mark.parametrize("spherical", [True, False])
def test_torch_path_equals_the_numpy_consumer_path(spherical):
    z0, z1 = _pair(32, seed=3)
    ours = interpolation_path(z0, z1, 7, spherical).numpy()
    theirs = serving.interpolation_path(z0.numpy(), z1.numpy(), 7, spherical)
    assert theirs.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_interpolate_images_start_and_end_at_the_endpoints():
    g = random_generator("dcgan", num_classes=10)
    z0, z1 = _pair()
    images = interpolate(g, z0, z1, steps=6, class_id=4)
    assert images.shape == (6, 1, 16, 16)
    with torch.no_grad():
        ends = g(torch.stack([z0, z1]), torch.tensor([4, 4]))
    torch.testing.assert_close(images[[0, -1]], ends, rtol=0, atol=1e-5)
    assert (images[1:] - images[:-1]).abs().amax() > 0  # the path moves
    with pytest.raises(ValueError, match="class_id"):
        interpolate(g, z0, z1, class_id=10)


def test_arithmetic_is_over_averaged_latents():
    g = torch.Generator().manual_seed(1)
    a, b, c = (torch.randn(3, 16, generator=g) for _ in range(3))
    expected = a.mean(0) - b.mean(0) + c.mean(0)
    torch.testing.assert_close(latent_arithmetic(a, b, c), expected)
    torch.testing.assert_close(latent_arithmetic(a[0], b[0], c[0]), a[0] - b[0] + c[0])

    gen = random_generator("dcgan", num_classes=0)
    images = arithmetic_samples(gen, a, b, c, n=5, noise=0.25, seed=0)
    with torch.no_grad():
        exact = gen(expected[None])
    torch.testing.assert_close(images[:1], exact, rtol=0, atol=1e-5)  # the first sample has no noise
    assert (images[1:] - exact).abs().amax() > 1e-3  # the others do


def test_interpolation_strip_png(tmp_path):
    g = random_generator("dcgan", num_classes=10)
    path = save_interpolation_strip(g, tmp_path / "strip.png", rows=3, steps=5)
    with Image.open(path) as img:
        # save_grid: 2 px padding around 16 px tiles, then upscaled 2x.
        assert img.size == (2 * (5 * 18 + 2), 2 * (3 * 18 + 2))
