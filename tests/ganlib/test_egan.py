"""E-GAN: every mutation makes a child, fitness = quality + lambda * diversity, the fittest child survives."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

import ganlib.egan as egan
from ganlib.models import ModelSpec, build_discriminator, build_generator

SPEC = ModelSpec("dcgan", 16, 1, z_dim=8, num_classes=10, g_width=8, d_width=8)
LR = 1e-2


def setup() -> tuple:
    torch.manual_seed(0)
    G, D = build_generator(SPEC), build_discriminator(SPEC)
    opt = torch.optim.Adam(G.parameters(), lr=LR, betas=(0.5, 0.999))
    # One ordinary step first, so the parent's Adam state is not empty (children must inherit it).
    loss = F.softplus(-D(G(torch.randn(8, 8), torch.arange(8) % 10), torch.arange(8) % 10)).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    D.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(1)
    batch = {
        "z": torch.randn(8, 8, generator=g),
        "y": torch.arange(8) % 10,
        "fit_z": torch.randn(8, 8, generator=g),
        "fit_y": (torch.arange(8) + 3) % 10,
        "real": torch.rand(8, 1, 16, 16, generator=g) * 2 - 1,
        "y_real": (torch.arange(8) + 5) % 10,
    }
    return G, D, opt, batch


# Independent references: the paper's formulas written out with sigmoid and log.
REFERENCE_LOSSES = {
    "minimax": lambda d: torch.log(1 - torch.sigmoid(d)).mean(),
    "nonsaturating": lambda d: -torch.log(torch.sigmoid(d)).mean(),
    "least_squares": lambda d: ((torch.sigmoid(d) - 1) ** 2).mean(),
}


def reference_child(G, D, opt, batch, mutation: str):
    child = copy.deepcopy(G)
    child_opt = torch.optim.Adam(child.parameters(), lr=LR, betas=(0.5, 0.999))
    child_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    D = copy.deepcopy(D)
    loss = REFERENCE_LOSSES[mutation](D(child(batch["z"], batch["y"]), batch["y"]))
    child_opt.zero_grad()
    loss.backward()
    child_opt.step()
    return child, child_opt


def reference_fitness(child, D, batch) -> tuple[float, float]:
    child, D = copy.deepcopy(child), copy.deepcopy(D)  # scoring a child must not change it
    with torch.no_grad():
        fake = child(batch["fit_z"], batch["fit_y"])
    d_real, d_fake = torch.sigmoid(D(batch["real"], batch["y_real"])), torch.sigmoid(D(fake, batch["fit_y"]))
    loss_d = -torch.log(d_real).mean() - torch.log(1 - d_fake).mean()  # the paper's D loss
    grads = torch.autograd.grad(loss_d, list(D.parameters()))
    norm = math.sqrt(sum(float(g.square().sum()) for g in grads))
    return float(d_fake.detach().mean()), -math.log(norm)


def run(G, D, opt, batch, weight: float) -> egan.Evolution:
    return egan.evolve_generator(
        G, opt, D, batch["z"], batch["y"], batch["fit_z"], batch["fit_y"], batch["real"], batch["y_real"],
        d_loss_kind="nonsaturating", diversity_weight=weight,
    )  # fmt: skip


def test_fitness_matches_the_paper_and_the_fittest_child_survives() -> None:
    G, D, opt, batch = setup()
    d_before = copy.deepcopy(D.state_dict())
    weight = 0.05
    expected = {}
    children = {}
    for m in egan.MUTATIONS:
        child, child_opt = reference_child(G, D, opt, batch, m)
        q, d = reference_fitness(child, D, batch)
        expected[m] = (q, d, q + weight * d)
        children[m] = (child, child_opt)
    evo = run(G, D, opt, batch, weight)
    for m, (q, d, f) in expected.items():
        assert evo.quality[m] == pytest.approx(q, abs=1e-6)
        assert evo.diversity[m] == pytest.approx(d, abs=1e-5)
        assert evo.fitness[m] == pytest.approx(f, abs=1e-6)
    assert len({round(f, 6) for f in evo.fitness.values()}) == 3  # the mutations really differ
    best = max(expected, key=lambda m: expected[m][2])
    assert evo.best == best
    child, child_opt = children[best]
    for (name, p), (_, ref) in zip(G.state_dict().items(), child.state_dict().items(), strict=True):
        torch.testing.assert_close(p, ref, rtol=0, atol=1e-6, msg=name)
    ref_state = child_opt.state_dict()["state"]
    for k, v in opt.state_dict()["state"].items():
        # Two separately computed backward passes may differ in the last bit (float32 reductions): 1e-6 relative.
        torch.testing.assert_close(v["exp_avg"], ref_state[k]["exp_avg"], rtol=1e-6, atol=1e-7)
    # D is left exactly as it was (weights, BN statistics) and still trainable.
    for k, v in D.state_dict().items():
        assert torch.equal(v, d_before[k]), k
    assert all(p.requires_grad for p in D.parameters())


def test_selection_follows_fitness_not_the_first_or_the_best_quality(monkeypatch) -> None:
    # quality favours minimax, but diversity (weight 0.1) makes least_squares the fittest.
    scores = iter([(0.5, -10.0), (0.4, 0.0), (0.1, 5.0)])
    monkeypatch.setattr(egan, "fitness", lambda *a, **k: next(scores))
    G, D, opt, batch = setup()
    ref, _ = reference_child(G, D, opt, batch, "least_squares")
    other, _ = reference_child(G, D, opt, batch, "minimax")
    evo = run(G, D, opt, batch, weight=0.1)
    assert evo.fitness == pytest.approx({"minimax": -0.5, "nonsaturating": 0.4, "least_squares": 0.6})
    assert evo.best == "least_squares"
    for p, r in zip(G.state_dict().values(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(p, r, rtol=0, atol=1e-6)
    assert any(not torch.allclose(p, o) for p, o in zip(G.parameters(), other.parameters(), strict=True))


def test_egan_is_selected_from_config(tmp_path) -> None:
    from ganlib_helpers import digits_split, tiny_config

    from ganlib.training import train

    picks = []
    cfg = tiny_config(loss={"strategy": "egan", "egan_mutations": ["least_squares", "nonsaturating"]})
    train(
        cfg,
        digits_split(16, n=64),
        tmp_path,
        progress=False,
        on_log=lambda s, logs: picks.append(logs["egan_best"]),
    )
    assert len(picks) == 4 and set(picks) <= {0.0, 1.0}
