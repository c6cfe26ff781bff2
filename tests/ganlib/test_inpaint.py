"""Semantic inpainting: a planted hole in held-out real digits is completed better than naive fills."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from latent_helpers import N_VAL, TemplateGenerator, digits_at, random_generator
from PIL import Image

from ganlib import inpaint_cli
from ganlib.inpaint import inpaint, mean_fill
from ganlib.models import load_discriminator, load_generator

REPO = Path(__file__).resolve().parents[2]


def _held_out(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] [n, 1, 16, 16] from the held-out split, the train split's mean image)."""
    x, _, perm = digits_at()
    x = torch.from_numpy(x).float() / 127.5 - 1
    return x[perm[-N_VAL:][:n]], x[perm[:-N_VAL]].mean(0, keepdim=True)


def _central_hole(n: int) -> torch.Tensor:
    mask = torch.ones(n, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 0  # the middle quarter of each digit: strokes, not just background
    return mask


def _hole_l1(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    hole = 1 - mask
    return float(((pred - truth).abs() * hole).sum() / hole.sum())


def test_inpainting_beats_mean_fill_on_held_out_digits(tiny_checkpoint):
    truth, train_mean = _held_out(12)
    mask = _central_hole(len(truth))
    g, d = load_generator(tiny_checkpoint), load_discriminator(tiny_checkpoint)
    assert d is not None
    result = inpaint(g, truth, mask, discriminator=d, steps=100, restarts=4, seed=0)

    ours = _hole_l1(result.completed, truth, mask)
    fill_known_mean = _hole_l1(mean_fill(truth, mask), truth, mask)
    fill_train_mean = _hole_l1(mask * truth + (1 - mask) * train_mean, truth, mask)
    print(
        f"hole L1: inpaint {ours:.3f}, known-pixel mean {fill_known_mean:.3f}, train mean {fill_train_mean:.3f}"
    )
    assert ours < 0.8 * fill_known_mean
    assert ours < fill_train_mean  # the stronger baseline: the average digit
    # Known pixels are the input's, exactly; the hole is the generator's.
    assert torch.equal(result.completed * mask, truth * mask)
    torch.testing.assert_close(result.completed * (1 - mask), result.generated * (1 - mask))
    assert result.z.shape == (12, 16) and result.class_id is None
    assert torch.isfinite(result.perceptual).all() and (result.perceptual < 0).all()


def test_networks_keep_their_mode_and_get_no_gradients(tiny_checkpoint):
    truth, _ = _held_out(2)
    g, d = load_generator(tiny_checkpoint).train(), load_discriminator(tiny_checkpoint)
    inpaint(g, truth, _central_hole(2), discriminator=d, steps=2, restarts=2)
    assert g.training and not d.training
    assert all(p.grad is None for p in [*g.parameters(), *d.parameters()])


def test_class_search_finds_the_class_the_known_pixels_came_from():
    torch.manual_seed(0)
    templates = torch.randn(5, 1, 8, 8).sign()  # five distinct binary patterns
    g = TemplateGenerator(templates).eval()
    with torch.no_grad():
        truth = g(torch.zeros(5, 4), torch.tensor([3, 0, 4, 1, 2]))
    mask = torch.ones(5, 1, 8, 8)
    mask[:, :, :, 4:] = 0  # the right half is unknown
    result = inpaint(g, truth, mask, steps=30, restarts=2, lr=0.1)
    assert result.class_id.tolist() == [3, 0, 4, 1, 2]
    assert _hole_l1(result.completed, truth, mask) < 0.1
    given = inpaint(g, truth, mask, steps=5, restarts=1, class_id=torch.tensor([1, 1, 1, 1, 1]))
    assert given.class_id.tolist() == [1] * 5
    with pytest.raises(ValueError, match="class_id must be"):
        inpaint(g, truth, mask, steps=1, class_id=7)  # 5 classes
    with pytest.raises(ValueError, match="unconditional"):
        inpaint(random_generator("dcgan", 0, resolution=8), truth, mask, steps=1, class_id=0)


def _png(arr: np.ndarray, path: Path) -> Path:
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def test_cli_completes_an_image_from_files(tiny_checkpoint, tmp_path, capsys):
    x, _, perm = digits_at()
    digit = x[perm[-1], 0]  # held out
    hole = np.zeros((16, 16), np.uint8)
    hole[4:12, 4:12] = 255  # white = fill
    image, mask = _png(digit, tmp_path / "digit.png"), _png(hole, tmp_path / "mask.png")
    out = tmp_path / "out.png"
    cmd = [sys.executable, "-m", "ganlib.inpaint_cli", "--checkpoint", str(tiny_checkpoint)]
    cmd += ["--image", str(image)]
    cmd += ["--mask", str(mask), "--out", str(out), "--steps", "40", "--restarts", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "contextual=" in proc.stdout and f"wrote {out}" in proc.stdout
    with Image.open(out) as img:
        assert img.size == (16, 16) and img.mode == "L"
        done = np.asarray(img)
    keep = hole == 0
    assert np.array_equal(done[keep], digit[keep])  # known pixels survive the round trip exactly
    assert done[~keep].std() > 10  # the hole got strokes, not one flat value

    no_hole = _png(np.zeros((16, 16)), tmp_path / "none.png")
    again = [*cmd[3:7], "--mask", str(no_hole), "--out", str(tmp_path / "x.png")]
    assert inpaint_cli.main(again) == 1  # in-process: a second torch start-up would only cost time
    assert "no hole" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_cli_searches_classes_of_a_conditional_checkpoint_without_discriminator(tmp_path, capsys):
    g = random_generator("dcgan", num_classes=10, resolution=8)
    ckpt = tmp_path / "g.pt"
    torch.save({"model_spec": g.spec.to_dict(), "generator": g.state_dict()}, ckpt)  # e.g. a pruned export
    image = _png(np.full((8, 8), 200), tmp_path / "img.png")
    hole = np.zeros((8, 8), np.uint8)
    hole[:, :3] = 255
    mask = _png(hole, tmp_path / "mask.png")
    argv = ["--checkpoint", str(ckpt), "--image", str(image), "--mask", str(mask), "--steps", "3"]
    assert inpaint_cli.main([*argv, "--restarts", "1", "--out", str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"class=\d", out) and "perceptual=0 " in out  # searched; no D, no perceptual term
    assert inpaint_cli.main([*argv, "--class-id", "10", "--out", str(tmp_path / "p.png")]) == 2
    assert "--class-id must be in [0, 10)" in capsys.readouterr().err


def test_gan_inpaint_script_is_registered():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["gan-inpaint"].split(":")
    assert callable(getattr(import_module(module), func))
