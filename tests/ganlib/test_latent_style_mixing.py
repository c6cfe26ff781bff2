"""Style mixing on the style-based generator: bands, routing of w per layer, and agreement with forward()."""

from __future__ import annotations

import pytest
import torch
from latent_helpers import random_generator
from PIL import Image

from ganlib.latent import (
    STYLE_BANDS,
    save_style_mixing_strip,
    style_bands,
    style_layer_resolutions,
    style_mix,
)


@pytest.fixture(scope="module", params=[0, 3], ids=["unconditional", "conditional"])
def style_g(request):
    return random_generator("stylegan_lite", num_classes=request.param, resolution=32, seed=1)


def _latents(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed))


def test_bands_split_the_layers_by_resolution(style_g):
    res = style_layer_resolutions(style_g)
    assert res == [4, 8, 8, 16, 16, 32, 32, 32]  # 7 synthesis layers + ToRGB at 32 px
    bands = style_bands(style_g)
    assert bands == {"coarse": [0, 1, 2], "middle": [3, 4], "fine": [5, 6, 7]}
    assert sorted(i for b in bands.values() for i in b) == list(range(style_g.synthesis.num_ws))


def test_mixing_a_source_with_itself_is_forward(style_g):
    z = _latents(3, 0)
    cls = torch.arange(3) % style_g.num_classes if style_g.num_classes else None
    with torch.no_grad():
        expected = style_g(z, cls)
    for band in STYLE_BANDS:
        mixed = style_mix(style_g, z, z, band, cls, cls)
        for i in range(3):
            torch.testing.assert_close(mixed[i, i], expected[i], rtol=0, atol=1e-5)


def test_every_layer_from_the_column_source_is_the_column_image(style_g):
    z_rows, z_cols = _latents(2, 1), _latents(3, 2)
    mixed = style_mix(style_g, z_rows, z_cols, list(range(style_g.synthesis.num_ws)))
    cls = torch.arange(3) % style_g.num_classes if style_g.num_classes else None
    with torch.no_grad():
        cols = style_g(z_cols, cls)
    for i in range(2):
        torch.testing.assert_close(mixed[i], cols, rtol=0, atol=1e-5)


def test_band_layers_get_the_column_w_and_the_others_the_row_w(style_g):
    z_rows, z_cols = _latents(2, 3), _latents(2, 4)
    with torch.no_grad():
        w_rows = style_g.mapping(z_rows, torch.arange(2) % 3 if style_g.num_classes else None)
        w_cols = style_g.mapping(z_cols, torch.arange(2) % 3 if style_g.num_classes else None)
    seen: dict[int, torch.Tensor] = {}
    modules = [layer.conv.affine for layer in style_g.synthesis.layers] + [
        style_g.synthesis.to_rgb.conv.affine
    ]
    hooks = [
        m.register_forward_hook(lambda _m, args, _out, i=i: seen.__setitem__(i, args[0].detach().clone()))
        for i, m in enumerate(modules)
    ]
    try:
        style_mix(style_g, z_rows, z_cols, "middle")
    finally:
        for h in hooks:
            h.remove()
    middle = set(style_bands(style_g)["middle"])
    for i, w in seen.items():  # w: [rows * cols, w_dim], row-major
        want = w_cols.repeat(2, 1) if i in middle else w_rows.repeat_interleave(2, 0)
        torch.testing.assert_close(w, want, rtol=0, atol=1e-6)


def test_style_mix_refuses_a_non_style_generator_and_bad_bands(style_g):
    with pytest.raises(TypeError, match="not style-based"):
        style_mix(random_generator("dcgan", 0), _latents(1, 0), _latents(1, 1), "coarse")
    with pytest.raises(ValueError, match="band"):
        style_mix(style_g, _latents(1, 0), _latents(1, 1), "medium")
    with pytest.raises(ValueError, match="indices"):
        style_mix(style_g, _latents(1, 0), _latents(1, 1), [99])


def test_style_mixing_strip_png(style_g, tmp_path):
    path = save_style_mixing_strip(style_g, tmp_path / "mix.png", n_rows=2, n_cols=3)
    with Image.open(path) as img:
        # 1 + 3 bands x 2 rows of (1 + 3) tiles of 32 px with 2 px padding, upscaled 2x.
        assert img.size == (2 * (4 * 34 + 2), 2 * (7 * 34 + 2))
