"""The training loop: exact resume, the NaN guard, the DataLoader path and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from ganlib_helpers import digits_split, tiny_config

import ganlib.losses as losses
import ganlib.training as training
from ganlib.data.shards import Split
from ganlib.models import load_generator
from ganlib.training import NonFiniteLossError, train


@pytest.fixture(scope="module")
def digits() -> Split:
    return digits_split(16, n=320)


def max_state_diff(a: dict, b: dict) -> float:
    """Largest absolute difference over every tensor in two (nested) state dicts; inf on a key mismatch."""
    if isinstance(a, torch.Tensor):
        return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    if isinstance(a, dict):
        if set(a) != set(b):
            return float("inf")
        return max([max_state_diff(a[k], b[k]) for k in a] or [0.0])
    if isinstance(a, list | tuple):
        return max([max_state_diff(x, y) for x, y in zip(a, b, strict=True)] or [0.0])
    return 0.0 if a == b else float("inf")


RESUME_CASES = {
    # Exercises n_critic, DiffAugment (random), R1, label smoothing, feature matching, minibatch
    # discrimination and mode seeking (paired class ids).
    "dcgan-everything": dict(
        model={"family": "dcgan"},
        loss={
            "r1_gamma": 1.0,
            "label_smoothing": 0.1,
            "feature_matching": 0.5,
            "minibatch_discrimination": True,
            "mode_seeking": 1.0,
        },
        train={"n_critic": 2, "diffaugment": ["translation", "cutout", "color"]},
    ),
    # Random noise inputs, style mixing, w_avg, spectral norm's power iteration, and E-GAN's children.
    "stylegan-egan": dict(model={"family": "stylegan_lite"}, loss={"strategy": "egan", "kind": "hinge"}),
    "wgan-gp": dict(model={"family": "sngan", "d_spectral_norm": False}, loss={"kind": "wgan_gp"}),
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_continues_exactly(case: str, digits: Split, tmp_path) -> None:
    n = 3
    sections = RESUME_CASES[case]
    cfg = tiny_config(
        **{**sections, "train": {**sections.get("train", {}), "steps": 2 * n, "checkpoint_every": n}}
    )
    half = tiny_config(
        **{**sections, "train": {**sections.get("train", {}), "steps": n, "checkpoint_every": n}}
    )

    straight = train(cfg, digits, tmp_path / "straight", progress=False)
    first = train(half, digits, tmp_path / "resumed", progress=False)
    second = train(cfg, digits, tmp_path / "resumed", progress=False)
    assert (first.resumed_from, second.resumed_from) == (0, n)

    a = torch.load(straight.checkpoint, weights_only=True)
    b = torch.load(second.checkpoint, weights_only=True)
    assert a["step"] == b["step"] == 2 * n
    for key in ("generator", "discriminator", "generator_ema", "opt_g", "opt_d"):
        assert max_state_diff(a[key], b[key]) == 0.0, key
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert json.loads(a["history"]) == json.loads(b["history"])
    # ... and the run did train: the weights moved from their initial values.
    torch.manual_seed(0)
    init = training.build_generator(training.model_spec_for(cfg, digits)).state_dict()
    assert max_state_diff(init, a["generator"]) > 1e-4


def test_dataloader_workers_see_the_same_batches(digits: Split, tmp_path) -> None:
    fast = train(tiny_config(train={"steps": 3}), digits, tmp_path / "w0", progress=False)
    workers = train(
        tiny_config(train={"steps": 3, "num_workers": 1}), digits, tmp_path / "w1", progress=False
    )
    a = torch.load(fast.checkpoint, weights_only=True)
    b = torch.load(workers.checkpoint, weights_only=True)
    assert max_state_diff(a["generator"], b["generator"]) == 0.0
    assert max_state_diff(a["discriminator"], b["discriminator"]) == 0.0


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(digits: Split, tmp_path, monkeypatch) -> None:
    cfg = tiny_config(train={"steps": 6, "checkpoint_every": 2})
    real_loss, calls = losses.generator_loss, []

    def poisoned(kind: str, fake: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        loss = real_loss(kind, fake)
        return loss * float("nan") if len(calls) >= 4 else loss  # steps 1-3 fine, NaN in step 4

    monkeypatch.setattr(losses, "generator_loss", poisoned)  # what generator_objective calls
    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(NonFiniteLossError, match=r"diverged at step 4: the generator loss is nan") as err:
        train(cfg, digits, tmp_path, progress=False)
    assert "(step 2) is kept unchanged" in str(err.value)
    assert torch.load(ckpt, weights_only=True)["step"] == 2  # step 3 was fine but not a checkpoint step

    # A resumed run that diverges leaves the file byte for byte as it was.
    monkeypatch.setattr(losses, "generator_loss", real_loss)
    train(tiny_config(train={"steps": 2}), digits, tmp_path / "good", progress=False)
    before = (tmp_path / "good" / "checkpoint.pt").read_bytes()
    explode = tiny_config(train={"steps": 8, "checkpoint_every": 1, "lr_g": 1e30, "lr_d": 1e30})
    with pytest.raises(NonFiniteLossError, match=r"diverged at step \d+") as err:
        train(explode, digits, tmp_path / "good", progress=False)
    assert (tmp_path / "good" / "checkpoint.pt").read_bytes() == before
    assert "kept unchanged" in str(err.value)


def test_non_finite_weights_are_never_checkpointed(digits: Split, tmp_path, monkeypatch) -> None:
    """A NaN that reaches the EMA weights without a NaN loss is still caught before it is saved."""
    train(tiny_config(train={"steps": 2, "checkpoint_every": 2}), digits, tmp_path, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    real_update = training.update_ema

    def bad_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
        real_update(ema, model, decay)
        next(ema.parameters()).data.fill_(float("nan"))

    monkeypatch.setattr(training, "update_ema", bad_update)
    with pytest.raises(NonFiniteLossError, match=r"step 4: the EMA generator weights are not finite"):
        train(tiny_config(train={"steps": 4, "checkpoint_every": 2}), digits, tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_checkpoint_is_weights_only_and_rebuilds_the_generator(digits: Split, tmp_path) -> None:
    cfg = tiny_config(model={"family": "sngan"}, train={"steps": 2, "lr_g": 1e-4, "lr_d": 4e-4})
    result = train(cfg, digits, tmp_path, progress=False)
    state = torch.load(result.checkpoint, weights_only=True)
    assert {"step", "generator", "discriminator", "generator_ema", "opt_g", "opt_d", "rng"} <= set(state)
    assert state["opt_g"]["param_groups"][0]["lr"] == 1e-4 and state["opt_d"]["param_groups"][0]["lr"] == 4e-4
    G = load_generator(result.checkpoint)
    assert not G.training and G.num_classes == 10
    z, y = G.sample_inputs(4, seed=0)
    torch.testing.assert_close(G(z, y), result.generator_ema.eval()(z, y))
    assert result.history["step"] == [1, 2] and len(result.history["loss_d"]) == 2


def test_changing_the_model_refuses_to_resume(digits: Split, tmp_path) -> None:
    train(tiny_config(train={"steps": 1}), digits, tmp_path, progress=False)
    with pytest.raises(ValueError, match="different model"):
        train(tiny_config(model={"g_width": 16}, train={"steps": 2}), digits, tmp_path, progress=False)


def test_unconditional_when_the_data_has_no_labels(tmp_path) -> None:
    data = digits_split(16, n=64)
    data = Split(images=data.images, labels=None, meta={})
    result = train(tiny_config(train={"steps": 1}), data, tmp_path, progress=False)
    assert result.generator.num_classes == 0
    with pytest.raises(ValueError, match="no labels"):
        train(
            tiny_config(model={"conditional": True}, train={"steps": 1}), data, tmp_path / "x", progress=False
        )


def test_nan_names_the_first_bad_step_and_stops_within_the_check_interval(
    digits: Split, tmp_path, monkeypatch
) -> None:
    """checkpoint_every far away: the NaN in step 5 must still stop training at the next host check,
    name step 5 (not a checkpoint step), and leave no checkpoint behind."""
    cfg = tiny_config(train={"steps": 200, "checkpoint_every": 100, "log_every": 100})
    real_loss, calls = losses.discriminator_loss, []

    def poisoned(kind: str, *args, **kwargs) -> torch.Tensor:
        calls.append(1)
        loss = real_loss(kind, *args, **kwargs)
        return loss * float("inf") if len(calls) >= 5 else loss  # step 5 on: inf (steps 6.. as well)

    monkeypatch.setattr(losses, "discriminator_loss", poisoned)
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg, digits, tmp_path, progress=False)
    every = training.FINITE_CHECK_EVERY
    assert str(err.value).startswith(
        f"training diverged at step 5: the discriminator loss is inf; stopped at step {every}; "
        "no checkpoint was written yet."
    )
    assert len(calls) == every  # nothing ran past the first check after the NaN
    assert not (tmp_path / "checkpoint.pt").exists()


def test_killed_checkpoint_write_leaves_a_temp_file_the_next_run_removes(digits: Split, tmp_path) -> None:
    import subprocess
    import sys

    # A real writer killed mid-write: torch.save writes part of the file, then the process gets SIGKILL.
    script = (
        "import os, signal, sys, torch\n"
        "import ganlib.checkpoint as c\n"
        "def dying_save(obj, f):\n"
        "    open(f, 'wb').write(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "c.torch.save = dying_save\n"
        "c.save_checkpoint({'step': 1}, sys.argv[1])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "checkpoint.pt")])
    assert proc.returncode == -9
    left = list(tmp_path.glob(".checkpoint.pt.*.tmp"))
    assert len(left) == 1 and left[0].read_bytes() == b"half a checkpoint"
    assert not (tmp_path / "checkpoint.pt").exists()

    (tmp_path / "unrelated.tmp").write_text("not ours")
    train(tiny_config(train={"steps": 1}), digits, tmp_path, progress=False)
    assert not list(tmp_path.glob(".checkpoint.pt.*.tmp"))
    assert (tmp_path / "unrelated.tmp").exists() and (tmp_path / "checkpoint.pt").is_file()
