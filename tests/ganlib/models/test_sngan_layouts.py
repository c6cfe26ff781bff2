"""The ResNet (SNGAN) family at 64 and 128 px follows the published models: the layer list transcribed here
from torch-mimicry's sngan_64.py / sngan_128.py (the chainer sngan_projection models, ngf = ndf = 1024,
nz = 128), and the parameter count that list implies, computed here from the layer shapes alone."""

from __future__ import annotations

import pytest
import torch

from ganlib.models import ModelSpec, build_discriminator, build_generator

# (in, out) of each generator block; (in, out, downsample) of the D's optimized block, then each D block.
PUBLISHED = {
    64: {
        "g_stem": 1024,
        "g": [(1024, 512), (512, 256), (256, 128), (128, 64)],
        "d": [(3, 64, True), (64, 128, True), (128, 256, True), (256, 512, True), (512, 1024, True)],
        "d_final_size": 2,
    },
    128: {
        "g_stem": 1024,
        "g": [(1024, 1024), (1024, 512), (512, 256), (256, 128), (128, 64)],
        "d": [
            (3, 64, True),
            (64, 128, True),
            (128, 256, True),
            (256, 512, True),
            (512, 1024, True),
            (1024, 1024, False),
        ],
        "d_final_size": 4,
    },
}
NZ = 128


def conv(i: int, o: int, k: int) -> int:
    return i * o * k * k + o


def g_params(layers: dict) -> int:
    """mimicry's G: Linear(nz, 16*ngf); GBlock(in, out): BN(in), c1 3x3 in->out, BN(out), c2 3x3 out->out,
    1x1 shortcut (always learnable: it upsamples); BN(64), c 3x3 64->3."""
    n = NZ * 16 * layers["g_stem"] + 16 * layers["g_stem"]
    for i, o in layers["g"]:
        n += 2 * i + conv(i, o, 3) + 2 * o + conv(o, o, 3) + conv(i, o, 1)
    last = layers["g"][-1][1]
    return n + 2 * last + conv(last, 3, 3)


def d_params(layers: dict) -> int:
    """mimicry's D: DBlockOptimized(in, out): c1 in->out, c2 out->out, 1x1 shortcut; DBlock(in, out): hidden
    = in, so c1 in->in, c2 in->out, 1x1 shortcut when in != out or it downsamples; SNLinear(ndf, 1)."""
    (i, o, _), *rest = layers["d"]
    n = conv(i, o, 3) + conv(o, o, 3) + conv(i, o, 1)
    for i, o, down in rest:
        n += conv(i, i, 3) + conv(i, o, 3) + (conv(i, o, 1) if (i != o or down) else 0)
    return n + layers["d"][-1][1] + 1


def _spec(resolution: int) -> ModelSpec:
    return ModelSpec("sngan", resolution, channels=3, z_dim=NZ, num_classes=0, g_width=64, d_width=64)


@pytest.mark.parametrize("resolution", [64, 128])
def test_layer_list_matches_the_published_model(resolution: int) -> None:
    layers = PUBLISHED[resolution]
    G, D = build_generator(_spec(resolution)), build_discriminator(_spec(resolution))
    assert G.stem.out_features == 16 * layers["g_stem"]
    assert [(b.conv1.in_channels, b.conv2.out_channels) for b in G.blocks] == layers["g"]
    got_d = [(b.conv1.in_channels, b.conv2.out_channels, b.down) for b in D.blocks]
    assert got_d == layers["d"]
    # The non-first D blocks keep their input width in conv1 (mimicry's DBlock: hidden = in_channels).
    assert all(b.conv1.out_channels == b.conv1.in_channels for b in list(D.blocks)[1:])


@pytest.mark.parametrize("resolution", [64, 128])
def test_parameter_counts_match_the_published_layer_list(resolution: int) -> None:
    layers = PUBLISHED[resolution]
    G, D = build_generator(_spec(resolution)), build_discriminator(_spec(resolution))
    assert sum(p.numel() for p in G.parameters()) == g_params(layers)
    assert sum(p.numel() for p in D.parameters()) == d_params(layers)


@pytest.mark.parametrize("resolution", [64, 128])
def test_feature_map_sizes(resolution: int) -> None:
    """G doubles 4x4 up to the image; D ends at 2x2 (64 px: five downsamplings) or 4x4 (128 px)."""
    spec = ModelSpec("sngan", resolution, channels=3, z_dim=8, num_classes=0, g_width=4, d_width=4)
    G, D = build_generator(spec), build_discriminator(spec)
    z, _ = G.sample_inputs(2, seed=0)
    x = G(z)
    assert x.shape == (2, 3, resolution, resolution)
    sizes = []
    for block in D.blocks:
        block.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    D(x)
    assert sizes[-1] == PUBLISHED[resolution]["d_final_size"]
    assert sizes[: len(PUBLISHED[resolution]["d"])] == [
        resolution // 2 ** min(k + 1, 5) for k in range(len(sizes))
    ]


def test_other_resolutions_keep_the_projects_layout() -> None:
    """32 px (the shipped sngan/wgan-gp/stylegan-lite configs) is unchanged: G 4w -> 4w -> 2w -> w from a
    4w stem; D w, 2w, 4w down to 4x4, then one 4w block; every D conv1 goes straight to its output width."""
    spec = ModelSpec("sngan", 32, channels=1, z_dim=8, num_classes=0, g_width=8, d_width=8)
    G, D = build_generator(spec), build_discriminator(spec)
    assert G.stem.out_features == 16 * 32
    assert [(b.conv1.in_channels, b.conv2.out_channels) for b in G.blocks] == [(32, 32), (32, 16), (16, 8)]
    assert [(b.conv1.in_channels, b.conv1.out_channels, b.down) for b in D.blocks] == [
        (1, 8, True),
        (8, 16, True),
        (16, 32, True),
        (32, 32, False),
    ]
    assert D(torch.zeros(2, 1, 32, 32)).shape == (2,)
