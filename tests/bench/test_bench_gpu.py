"""bench/bench_gpu.py runs unattended: its code path on the CPU at toy size, and its FLOP count checked
against the project's independent per-layer count (``ganlib.prune.count_flops``)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.bench_gpu import MODELS, Model, _config, _split, peak_bf16_flops, run, step_flops
from ganlib.models import build_generator
from ganlib.prune import count_flops
from ganlib.training import model_spec_for


def test_runs_on_cpu_and_reports_every_variant() -> None:
    tiny = Model("tiny DCGAN 16x16", "dcgan", 16, 8, "nonsaturating")
    variants = (("fp32", "fp32", False), ("bf16 autocast", "bf16", False))
    rows = run(steps=8, batch=8, device="cpu", models=(tiny,), variants=variants, service=False)
    assert [r["ratio"] for r in rows if isinstance(r["ratio"], str)] == [], rows
    assert len(rows) == 2
    assert all(float(r["ours"].split()[0]) > 0 for r in rows)
    assert "TFLOP/s" in rows[0]["note"] and "unknown peak" in rows[0]["note"]  # "cpu" has no peak entry


def test_without_cuda_it_says_the_gpu_rows_are_still_to_measure() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    (row,) = run()
    assert row["ratio"] == "skipped" and "still to be measured" in row["note"]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.label)
def test_step_flops_agree_with_the_per_layer_count(model: Model) -> None:
    cfg = _config(model, "fp32", False, steps=1, batch=4, device="cpu")
    split = _split(model.resolution)
    g = build_generator(model_spec_for(cfg, split)).eval()
    # torch's counter on one G forward == the hook-based closed-form count of convs and linears.
    z, y = g.sample_inputs(3, seed=0, device=torch.device("cpu"))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        g(z, y)
    assert counter.get_total_flops() == pytest.approx(3 * count_flops(g), rel=0.02)
    # A training step: at least (2 + n_critic) G forwards' worth, linear in the batch.
    per_step = step_flops(cfg, split)
    assert per_step > (2 + cfg.train.n_critic) * 4 * count_flops(g)
    double = cfg.model_copy(update={"train": cfg.train.model_copy(update={"batch_size": 8})})
    assert step_flops(double, split) == pytest.approx(2 * per_step)


def test_peaks_match_on_the_device_name() -> None:
    assert peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_bf16_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_bf16_flops("NVIDIA H200") == 989e12
    assert peak_bf16_flops("cpu") is None
