"""The result of a torchrun job is read from its output folder (what a launcher that never sees the processes'
stdout, such as a Kubernetes Job's, relies on): rank 0's summary as printed, checked against the job's size;
a summary left by an earlier job is never read as this one's."""

from __future__ import annotations

import json

import pytest
from ganlib_helpers import tiny_config, write_processed

from ganlib.distributed_launch import TorchrunFailed, read_torchrun_result, write_torchrun_config
from ganlib.train_cli import main

pytestmark = pytest.mark.slow  # a real (tiny) training run


def test_summary_on_disk_is_the_printed_one(tmp_path, capsys) -> None:
    data = write_processed(tmp_path / "processed")
    out = tmp_path / "run"
    config = write_torchrun_config(tiny_config(train={"steps": 2}), out)
    assert main(["--config", str(config), "--data", str(data), "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    result = read_torchrun_result(out, world_size=1)
    assert (result.steps, result.resumed_from, result.images_per_sec) == (
        printed["steps"],
        printed["resumed_from"],
        printed["images_per_sec"],
    )
    assert result.checkpoint == out / "checkpoint.pt" and result.checkpoint.is_file()
    assert result.device == "cpu x1 (torchrun)" and result.history["step"] == [1, 2]

    with pytest.raises(TorchrunFailed, match="comes from a job of 1 processes, expected 4"):
        read_torchrun_result(out, world_size=4)
    write_torchrun_config(tiny_config(train={"steps": 3}), out)  # the next job in the same folder
    with pytest.raises(TorchrunFailed, match=r"ended without writing .*train-summary\.json"):
        read_torchrun_result(out, world_size=1)
