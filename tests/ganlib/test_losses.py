"""Every loss and regulariser against values worked out by hand (written as plain ``math`` next to the
numbers), plus DiffAugment's properties."""

from __future__ import annotations

import math

import pytest
import torch

from ganlib.augment import diff_augment
from ganlib.egan import MUTATIONS
from ganlib.losses import (
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    gradient_penalty,
    mode_seeking_loss,
    paired_labels,
    r1_penalty,
)

REAL = torch.tensor([0.0, 2.0])  # D's logits on two real images
FAKE = torch.tensor([-1.0, 3.0])  # ... and on two fakes


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# -log sigmoid(0) = 0.693147, -log sigmoid(2) = 0.126928: mean 0.410038
REAL_BCE = -(math.log(sig(0)) + math.log(sig(2))) / 2
# -log(1 - sigmoid(-1)) = 0.313262, -log(1 - sigmoid(3)) = 3.048587: mean 1.680924
FAKE_BCE = -(math.log(1 - sig(-1)) + math.log(1 - sig(3))) / 2


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("nonsaturating", 2.090962),  # REAL_BCE + FAKE_BCE
        ("minimax", 2.090962),  # D plays the same game in both
        ("hinge", 2.5),  # mean(relu(1 - [0, 2])) = 0.5, mean(relu(1 + [-1, 3])) = 2
        ("wgan_gp", 0.0),  # mean(fake) - mean(real) = 1 - 1
        ("lsgan", 3.0),  # 0.5 * mean(([0, 2] - 1)^2) = 0.5, 0.5 * mean([-1, 3]^2) = 2.5
    ],
)
def test_discriminator_losses(kind: str, expected: float) -> None:
    assert discriminator_loss(kind, REAL, FAKE).item() == pytest.approx(expected, abs=1e-5)
    if kind in ("nonsaturating", "minimax"):
        assert expected == pytest.approx(REAL_BCE + FAKE_BCE, abs=1e-6)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("nonsaturating", 0.680924),  # -mean(log sigmoid([-1, 3])) = (1.313262 + 0.048587) / 2
        ("minimax", -1.680924),  # mean(log(1 - sigmoid([-1, 3]))) = -FAKE_BCE
        ("hinge", -1.0),  # -mean(fake)
        ("wgan_gp", -1.0),
        ("lsgan", 2.0),  # 0.5 * mean(([-1, 3] - 1)^2) = 0.5 * (4 + 4) / 2
    ],
)
def test_generator_losses(kind: str, expected: float) -> None:
    assert generator_loss(kind, FAKE).item() == pytest.approx(expected, abs=1e-5)
    if kind == "minimax":
        assert expected == pytest.approx(-FAKE_BCE, abs=1e-6)


def test_one_sided_label_smoothing() -> None:
    s = 0.1
    # Real target 0.9: -(0.9 log p + 0.1 log(1 - p)) for p = sigmoid(0), sigmoid(2); fakes unchanged.
    real_term = -sum(0.9 * math.log(sig(r)) + 0.1 * math.log(1 - sig(r)) for r in (0, 2)) / 2  # 0.510038
    got = discriminator_loss("nonsaturating", REAL, FAKE, label_smoothing=s).item()
    assert got == pytest.approx(real_term + FAKE_BCE, abs=1e-5)
    assert real_term == pytest.approx(0.510038, abs=1e-6)
    # LSGAN: real target 0.9: 0.5 * mean([0.81, 1.21]) = 0.505, plus 2.5 for the fakes.
    assert discriminator_loss("lsgan", REAL, FAKE, label_smoothing=s).item() == pytest.approx(3.005, abs=1e-5)
    # Fakes only (one-sided): smoothing does not move the fake term.
    zero_real = torch.tensor([50.0, 50.0])  # real term ~0 without smoothing
    assert discriminator_loss("nonsaturating", zero_real, FAKE, 0.0).item() == pytest.approx(
        FAKE_BCE, abs=1e-5
    )


def test_unknown_loss_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="hinge"):
        generator_loss("wasserstein", FAKE)
    with pytest.raises(ValueError, match="lsgan"):
        discriminator_loss("wasserstein", REAL, FAKE)


class LinearD(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so the penalties have closed forms."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def test_gradient_penalty_closed_form_and_its_gradient() -> None:
    D = LinearD(torch.ones(1, 2, 2))  # ||grad|| = ||w|| = 2 at every interpolate
    real, fake = torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)
    gp = gradient_penalty(D, real, fake)
    assert gp.item() == pytest.approx((2.0 - 1.0) ** 2, abs=1e-6)
    gp.backward()  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = 2 * 1 * 1 / 2 = 1 per entry
    torch.testing.assert_close(D.w.grad, torch.ones(1, 2, 2))
    unit = LinearD(torch.full((1, 2, 2), 0.5))  # ||w|| = 1: nothing to penalise
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-6)


def test_r1_penalty_closed_form() -> None:
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).requires_grad_(True)
    logits = 0.5 * real.square().sum(1)  # grad = x, so ||grad||^2 = 5 and 25: mean 15
    assert r1_penalty(logits, real).item() == pytest.approx(15.0)


def test_feature_matching_loss() -> None:
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean [2, 3]
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)  # mean [1, 1]
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(1.0**2 + 2.0**2)
    loss.backward()  # d/dfake_ij = -2 (mean_real - mean_fake)_j / N = -[1, 2]
    torch.testing.assert_close(fake.grad, torch.tensor([[-1.0, -2.0], [-1.0, -2.0]]))


def test_egan_mutation_losses() -> None:
    logits = torch.tensor([0.0, 2.0])
    assert MUTATIONS["minimax"](logits).item() == pytest.approx(
        (math.log(0.5) + math.log(1 - sig(2))) / 2, abs=1e-6
    )
    assert MUTATIONS["nonsaturating"](logits).item() == pytest.approx(
        -(math.log(0.5) + math.log(sig(2))) / 2, abs=1e-6
    )
    # (0.5 - 1)^2 = 0.25 and (0.880797 - 1)^2 = 0.014209: mean 0.132105
    assert MUTATIONS["least_squares"](logits).item() == pytest.approx(0.132105, abs=1e-5)


# --- DiffAugment ---


def test_translation_shifts_by_whole_pixels_with_zero_fill() -> None:
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8) + 1.0  # strictly positive, so zero fill is recognisable
    out = diff_augment(x, ["translation"])
    assert out.shape == x.shape
    pad = torch.nn.functional.pad(x, [1, 1, 1, 1])  # shifts up to 1 px (8 * 0.125) in each direction
    for i in range(16):
        shifts = [
            torch.equal(out[i], pad[i, :, 1 + dx : 9 + dx, 1 + dy : 9 + dy])
            for dx in (-1, 0, 1)
            for dy in (-1, 0, 1)
        ]
        assert any(shifts)


def test_cutout_zeroes_one_square_per_image() -> None:
    torch.manual_seed(0)
    out = diff_augment(torch.ones(32, 1, 8, 8), ["cutout"])
    zeros = (out == 0).flatten(1).sum(1)
    assert (zeros > 0).all() and (zeros <= 16).all()  # a 4x4 square (ratio 0.5), clipped at the borders
    assert (out[zeros == 16] == 0).any()


def test_color_is_a_per_sample_affine_map_and_differentiable() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 6, 6, requires_grad=True)
    out = diff_augment(x, ["color"])
    # One channel: brightness adds, saturation is a no-op, contrast scales about the mean: out = a x + b.
    for i in range(4):
        xi, oi = x[i].detach().flatten(), out[i].detach().flatten()
        a = (oi[1] - oi[0]) / (xi[1] - xi[0])
        torch.testing.assert_close(oi, a * xi + (oi[0] - a * xi[0]), atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_unknown_augment_policy() -> None:
    with pytest.raises(ValueError, match="translation"):
        diff_augment(torch.zeros(1, 1, 4, 4), ["rotate"])


def test_mode_seeking_loss_closed_form() -> None:
    # Two pairs: images differ by 0.5 everywhere in pair 1 and 0.1 in pair 2 -> mean |dG| = 0.3;
    # latents differ by 2 and 0 in every entry -> mean |dz| = 1.0. Loss = 1 / (0.3 / 1.0 + 1e-5).
    fake = torch.zeros(4, 1, 2, 2)
    fake[2] += 0.5
    fake[3] += 0.1
    z = torch.zeros(4, 3)
    z[2] += 2.0
    assert mode_seeking_loss(fake, z).item() == pytest.approx(1 / (0.3 + 1e-5), rel=1e-6)
    # More spread between the pair's images for the same latents gives a smaller loss.
    assert mode_seeking_loss(2 * fake, z) < mode_seeking_loss(fake, z)


def test_paired_labels_repeat_the_first_half() -> None:
    assert paired_labels(torch.tensor([3, 1, 4, 1, 5])).tolist() == [3, 1, 3, 1, 5]
    assert paired_labels(None) is None
