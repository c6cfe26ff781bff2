"""compute.processes = 2: the trained_generator asset itself launches torchrun (2 gloo processes on CPU),
reads back rank 0's result, and the checkpoint records both ranks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import torch
from workspace_helpers import tiny_config

from pipelines.assets.data import processed_dataset, raw_images
from pipelines.assets.model import trained_generator
from pipelines.definitions import build_resources
from pipelines.resources import ComputeResource

pytestmark = pytest.mark.slow


def test_trained_generator_launches_torchrun_with_two_processes(workspace: Path, tmp_path: Path) -> None:
    resources = build_resources(
        workspace,
        str(tmp_path / "store"),
        gan_config=tiny_config(train={"steps": 4, "batch_size": 16, "checkpoint_every": 2, "log_every": 2}),
        compute=ComputeResource(device="cpu", processes=2),
    )
    result = dg.materialize([raw_images, processed_dataset, trained_generator], resources=resources)
    (mat,) = result.asset_materializations_for_node("trained_generator")
    assert mat.metadata["device"].value == "cpu x2 (torchrun)"
    record = result.output_for_node("trained_generator")
    state = torch.load(record.checkpoint, weights_only=True)
    assert state["step"] == 4 == record.steps
    assert len(state["rng_per_rank"]) == 2  # written by rank 0 of a 2-process DDP job
    r0, r1 = (r["torch"] for r in state["rng_per_rank"])
    assert not torch.equal(r0, r1)
