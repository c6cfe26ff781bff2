"""The training CLI: trains and resumes from a processed dataset, and a divergence is one line on stderr."""

from __future__ import annotations

import json
import os
import re

import torch
from ganlib_helpers import write_processed

from ganlib.models import load_generator


def test_cli_trains_and_resumes(tmp_path, capsys) -> None:
    from ganlib.train_cli import main

    write_processed(tmp_path / "processed")
    args = ["--config", "dcgan", "--data", str(tmp_path / "processed"), "--out", str(tmp_path / "run")]
    small = ["--set", "model.g_width=8", "--set", "model.d_width=8", "--set", "train.batch_size=16"]
    small += ["--set", "train.log_every=1"]
    assert main([*args, *small, "--set", "train.steps=2", "--set", "train.device=cpu"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2
    assert main([*args, *small, "--set", "train.steps=3", "--set", "train.device=cpu"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["resumed_from"] == 2 and summary["world_size"] == 1
    assert json.loads((tmp_path / "run" / "history.json").read_text())["step"] == [1, 2, 3]
    with torch.no_grad():
        images = load_generator(tmp_path / "run" / "checkpoint.pt")(torch.randn(2, 64), torch.tensor([0, 1]))
    assert images.shape == (2, 1, 16, 16) and torch.isfinite(images).all()


def test_cli_prints_one_line_on_divergence(tmp_path) -> None:
    import subprocess
    import sys

    write_processed(tmp_path / "processed")
    sets = ["model.g_width=8", "model.d_width=8", "train.batch_size=16", "train.device=cpu"]
    sets += ["train.steps=64", "train.lr_g=1e30", "train.lr_d=1e30", "train.checkpoint_every=1000"]
    cmd = [
        sys.executable,
        "-m",
        "ganlib.train_cli",
        "--config",
        "dcgan",
        "--data",
        str(tmp_path / "processed"),
    ]
    cmd += ["--out", str(tmp_path / "run")] + [a for s in sets for a in ("--set", s)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert re.fullmatch(
        r"training diverged at step \d+: the (discriminator|generator) loss is (nan|-?inf); stopped at step "
        r"\d+; no checkpoint was written yet\. Lower the learning rates.*",
        lines[0],
    ), lines[0]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
