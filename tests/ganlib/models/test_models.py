"""Model contract for every family: shapes at 32 and 64 px, the conditional path, units, spectral norm,
minibatch discrimination and the style-based generator's noise, truncation and mixing."""

from __future__ import annotations

import pytest
import torch

from ganlib.models import GENERATORS, ModelSpec, build_discriminator, build_generator
from ganlib.models.layers import MinibatchDiscrimination

FAMILIES = ["dcgan", "sngan", "stylegan_lite"]


def spec(family: str, resolution: int = 32, num_classes: int = 0, channels: int = 1, **kw) -> ModelSpec:
    return ModelSpec(
        family, resolution, channels, z_dim=8, num_classes=num_classes, g_width=8, d_width=8, **kw
    )


def randomize_class_embeddings(m: torch.nn.Module) -> None:
    """CBN starts as the identity for every class (gain 1, bias 0); give classes distinct gains/biases."""
    torch.manual_seed(1)
    for e in m.modules():
        if isinstance(e, torch.nn.Embedding):
            torch.nn.init.normal_(e.weight, 0.0, 0.5)


def test_registries_list_the_three_families() -> None:
    assert set(GENERATORS) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes_range_and_gradients(family: str, resolution: int, num_classes: int) -> None:
    torch.manual_seed(0)
    s = spec(family, resolution, num_classes, channels=3)
    G, D = build_generator(s), build_discriminator(s)
    z, y = G.sample_inputs(4, seed=0)
    assert (y is None) == (num_classes == 0)
    x = G(z, y)
    assert x.shape == (4, 3, resolution, resolution)
    assert x.abs().max() <= 1.0
    logits, feats = D(x, y, return_features=True)
    assert logits.shape == (4,) and feats.ndim == 2 and feats.shape[0] == 4
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters() if p.requires_grad)


@pytest.mark.parametrize("family", FAMILIES)
def test_conditional_generator_depends_on_class_and_requires_it(family: str) -> None:
    torch.manual_seed(0)
    G = build_generator(spec(family, 32, num_classes=10)).eval()
    randomize_class_embeddings(G)
    z = torch.randn(3, 8)
    a, b = G(z, torch.tensor([0, 1, 2])), G(z, torch.tensor([3, 4, 5]))
    assert (a - b).abs().max() > 1e-3  # same latents, other classes: other images
    assert torch.equal(a, G(z, torch.tensor([0, 1, 2])))
    with pytest.raises(ValueError, match="class_id"):
        G(z, None)


@pytest.mark.parametrize("family", FAMILIES)
def test_projection_discriminator_depends_on_class(family: str) -> None:
    torch.manual_seed(0)
    D = build_discriminator(spec(family, 32, num_classes=10)).eval()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert (D(x, torch.tensor([0, 1, 2])) - D(x, torch.tensor([3, 4, 5]))).abs().max() > 1e-4
    with pytest.raises(ValueError, match="class_id"):
        D(x, None)


@pytest.mark.parametrize("family", FAMILIES)
def test_unit_layers_output_their_widths_and_follow_g_layer_widths(family: str) -> None:
    G = build_generator(spec(family, 32)).eval()
    names = G.unit_layers()
    assert names
    modules = dict(G.named_modules())
    widths = {}
    hooks = [
        modules[n].register_forward_hook(lambda m, i, o, n=n: widths.__setitem__(n, o.shape[1]))
        for n in names
    ]
    G(torch.randn(2, 8))
    for h in hooks:
        h.remove()
    assert list(widths) == names
    # A "pruned" spec: every unit layer one channel narrower (rebuilds, still makes images).
    narrower = tuple(w - 1 for w in widths.values())
    G2 = build_generator(spec(family, 32, g_layer_widths=narrower)).eval()
    modules2 = dict(G2.named_modules())
    got = []
    hooks = [modules2[n].register_forward_hook(lambda m, i, o: got.append(o.shape[1])) for n in names]
    assert G2(torch.randn(2, 8)).shape == (2, 1, 32, 32)
    assert tuple(got) == narrower
    with pytest.raises(ValueError, match="g_layer_widths"):
        build_generator(spec(family, 32, g_layer_widths=(8,)))


@pytest.mark.parametrize("family", ["sngan", "stylegan_lite"])
def test_resnet_discriminator_is_spectrally_normalised(family: str) -> None:
    torch.manual_seed(0)
    D = build_discriminator(spec(family, 16))
    x = torch.randn(4, 1, 16, 16)
    for _ in range(30):  # power iteration: one step per training-mode forward
        D(x)
    convs = [m for m in D.modules() if hasattr(m, "weight_orig")]
    assert len(convs) >= 7
    for m in convs:
        sigma = torch.linalg.svdvals(m.weight.detach().flatten(1))[0]  # independent: a full SVD
        assert sigma == pytest.approx(1.0, abs=0.02)
    plain = build_discriminator(spec(family, 16), spectral_norm=False)
    assert not any(hasattr(m, "weight_orig") for m in plain.modules())


def test_dcgan_discriminator_spectral_norm_option_drops_batchnorm() -> None:
    D = build_discriminator(spec("dcgan", 32), spectral_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    assert sum(hasattr(m, "weight_orig") for m in D.modules()) == 4  # 3 convs + the head's linear
    assert D(torch.randn(2, 1, 32, 32)).shape == (2,)


def test_minibatch_discrimination_matches_the_formula() -> None:
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(3, num_kernels=2, kernel_dim=2)
    h = torch.randn(4, 3)
    mbd.requires_grad_(False)
    out = mbd(h)
    assert out.shape == (4, 5) and torch.equal(out[:, :3], h)
    m = (h @ mbd.T).view(4, 2, 2)
    for i in range(4):
        for b in range(2):
            expect = sum(float(torch.exp(-(m[i, b] - m[j, b]).abs().sum())) for j in range(4) if j != i)
            assert out[i, 3 + b].item() == pytest.approx(expect, rel=1e-5)
    # A collapsed batch (identical samples) gets the maximum o = N - 1 per kernel.
    same = mbd(h[:1].expand(4, 3))
    assert torch.allclose(same[:, 3:], torch.full((4, 2), 3.0))


@pytest.mark.parametrize("family", ["dcgan", "sngan"])
def test_discriminators_with_minibatch_discrimination(family: str) -> None:
    D = build_discriminator(spec(family, 16, num_classes=10), minibatch_discrimination=True)
    assert D.mbd is not None
    logits, feats = D(torch.randn(5, 1, 16, 16), torch.arange(5), return_features=True)
    assert logits.shape == (5,) and feats.shape[1] + D.mbd.num_kernels == D.mbd.out_features


# --- the style-based generator ---


def stylegan(num_classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    G = build_generator(spec("stylegan_lite", 16, num_classes))
    for layer in G.synthesis.layers:
        layer.noise_strength.data.fill_(0.3)  # noise starts switched off (strength 0), as in StyleGAN2
    return G


def test_stylegan_eval_is_deterministic_and_uses_the_registered_noise() -> None:
    G = stylegan().eval()
    z, y = G.sample_inputs(3, seed=0)
    out = G(z, y)
    assert torch.equal(out, G(z, y))
    const = [layer.noise_const.expand(3, -1, -1, -1) for layer in G.synthesis.layers]
    assert torch.equal(out, G(z, y, noise=const))
    other = [torch.randn(s) for s in G.noise_shapes(3)]
    assert (G(z, y, noise=other) - out).abs().max() > 1e-3  # the noise input reaches the image
    G.train()
    G.mixing_prob = 0.0
    assert not torch.equal(G(z, y), G(z, y))  # training draws fresh noise


def test_stylegan_w_avg_truncation_and_mixing() -> None:
    G = stylegan()
    z, y = G.sample_inputs(6, seed=1)
    G.train()
    G.mixing_prob = 0.0
    with torch.no_grad():
        G(z, y)
        w = G.mapping(z, y)
    torch.testing.assert_close(G.w_avg, (1 - 0.995) * w.mean(0))  # one EMA step from zero
    G.eval()
    zero_noise = [torch.zeros(s) for s in G.noise_shapes(6)]
    # psi = 0: every latent maps to w_avg, so all images are the same.
    collapsed = G(z, y, noise=zero_noise, truncation_psi=0.0)
    assert torch.allclose(collapsed, collapsed[:1].expand_as(collapsed), atol=1e-6)
    assert (G(z, y, noise=zero_noise) - collapsed).abs().max() > 1e-3
    # Mixing: in train mode with zero noise, mixing_prob 0 equals eval mode; mixing_prob 1 does not.
    G.train()
    torch.manual_seed(5)
    no_mix = G(z, y, noise=zero_noise)
    G.mixing_prob = 1.0
    mixed = G(z, y, noise=zero_noise)
    G.eval()
    torch.testing.assert_close(no_mix, G(z, y, noise=zero_noise))
    assert (mixed - no_mix).abs().amax(dim=(1, 2, 3)).min() > 1e-4  # every sample was mixed


def test_stylegan_onnx_export_matches_pytorch(tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from ganlib.export import REQUIRED_METADATA, check_parity, export_onnx

    G = stylegan().eval()
    export_onnx(G, tmp_path / "g.onnx", metadata={k: "test" for k in REQUIRED_METADATA})
    result = check_parity(G, tmp_path / "g.onnx", atol=1e-4)
    assert result.ok and result.max_abs_err < 1e-4
