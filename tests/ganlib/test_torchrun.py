"""Two torchrun "nodes" on loopback, each running exactly the command a pod of the multi-node Kubernetes Job
runs (``ganlib.torchrun.torchrun_command`` with a c10d rendezvous), end with identical generators."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from ganlib_helpers import tiny_config, write_processed
from loopback import free_port
from model_helpers import parameters_digest

from ganlib.models import load_generator
from ganlib.torchrun import Rendezvous, torchrun_command

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_nodes_with_c10d_rendezvous_end_with_identical_generators(tmp_path) -> None:
    data = write_processed(tmp_path / "processed", n=64)
    cfg = tiny_config(train={"steps": 3, "checkpoint_every": 2, "batch_size": 16})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    out = tmp_path / "run"  # one --out for both, as the pods share the workspace claim
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    procs, logs = [], []
    for node in (0, 1):
        cmd = torchrun_command(
            1, config, data, out, "gloo", rendezvous=Rendezvous(2, node, endpoint, "mn-test")
        )
        log = tmp_path / f"node{node}.log"
        with log.open("w") as f:
            procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT))
        logs.append(log)
    try:
        for p in procs:
            p.wait(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    texts = [log.read_text() for log in logs]
    for node, (p, text) in enumerate(zip(procs, texts, strict=True)):
        assert p.returncode == 0, f"node {node} failed:\n{text[-3000:]}"

    def lines(text: str) -> list[dict]:
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    digests = {d["rank"]: d["generator_sha256"] for text in texts for d in lines(text) if "rank" in d}
    assert sorted(digests) == [0, 1]  # node 0 ran global rank 0, node 1 rank 1
    summary = next(d for d in lines(texts[0]) if "checkpoint" in d)
    assert summary["world_size"] == 2 and summary["steps"] == 3
    # Both ranks hold what rank 0 wrote to the shared checkpoint: checked with the test's own digest.
    expected = parameters_digest(load_generator(out / "checkpoint.pt", ema=False))
    assert digests == {0: expected, 1: expected}
