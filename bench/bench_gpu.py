"""GPU training throughput and the consumer service on the CUDA provider (only where CUDA is present).

    python -m bench --only gpu          # or: python -m bench.bench_gpu

Training rows: steady-state img/s of the real trainer (``ganlib.training.train``) for the 32 px DCGAN and a
64 px ResNet/SNGAN (hinge, spectral-norm D) at batch 256, fp32 vs bf16 autocast vs bf16 + torch.compile
(default and "reduce-overhead" = CUDA graphs). Each row also gives the achieved FLOP/s: the FLOPs of one
training step (D step + G step, counted by ``torch.utils.flop_counter`` on the same modules and losses)
times steps/s, as a fraction of the GPU's dense bf16 peak (from its name; "unknown peak" otherwise).
Service rows: ``bench.bench_service`` with ``--device cuda`` (batched vs unbatched at 32 clients).

Unattended and bounded: no variant starts after ``budget_s`` seconds, a failing variant becomes an error row,
and without CUDA everything is one "skipped" row. ``device="cpu"`` runs the same code on a CPU (tests).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ganlib.config import GANConfig, parse_config
from ganlib.data.shards import Split
from ganlib.data.sources import digits_images
from ganlib.losses import discriminator_objective, generator_objective
from ganlib.models import build_discriminator, build_generator
from ganlib.training import model_spec_for, train

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets; matched on the name.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)


@dataclass(frozen=True)
class Model:
    label: str
    family: str
    resolution: int
    width: int
    loss: str


MODELS = (
    Model("DCGAN 32x32", "dcgan", 32, 64, "nonsaturating"),
    Model("ResNet/SNGAN 64x64", "sngan", 64, 64, "hinge"),
)
# (label, precision, compile): fp32 first, the reference of its model's rows.
VARIANTS = (
    ("fp32", "fp32", False),
    ("bf16 autocast", "bf16", False),
    ("bf16 + torch.compile", "bf16", True),
    ("bf16 + torch.compile reduce-overhead (CUDA graphs)", "bf16", "reduce-overhead"),
)


def peak_bf16_flops(device_name: str) -> float | None:
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in device_name:
            return tflops * 1e12
    return None


def _split(resolution: int) -> Split:
    images, labels = digits_images()
    x = F.interpolate(
        torch.from_numpy(images).float()[:, None], size=(resolution, resolution), mode="bilinear"
    )
    return Split(
        images=x.round().clamp(0, 255).to(torch.uint8).numpy(),
        labels=labels,
        meta={"class_names": [str(i) for i in range(10)]},
    )


def _config(
    model: Model, precision: str, compile_: bool | str, steps: int, batch: int, device: str
) -> GANConfig:
    return parse_config(
        {
            "model": {"family": model.family, "g_width": model.width, "d_width": model.width, "z_dim": 128},
            "loss": {"kind": model.loss},
            "train": {
                "steps": steps,
                "batch_size": batch,
                "device": device,
                "precision": precision,
                "compile": compile_,
                "checkpoint_every": 10**9,
                "log_every": 10**9,
            },
        }
    )


def step_flops(cfg: GANConfig, split: Split, probe_batch: int = 2) -> float:
    """FLOPs of one training step at ``cfg.train.batch_size``: n_critic D steps (G forward without grad,
    D on real and fake, D's backward) and one G step (G and D forward, backward into G). Counted at a small
    batch on the CPU and scaled linearly (every layer's cost is linear in the batch)."""
    spec = model_spec_for(cfg, split)
    G, D = build_generator(spec), build_discriminator(spec)
    real = torch.zeros(probe_batch, spec.channels, spec.resolution, spec.resolution)
    y = torch.zeros(probe_batch, dtype=torch.long) if spec.num_classes else None
    z = torch.randn(probe_batch, spec.z_dim)
    same, plain = (lambda x: x), contextlib.nullcontext
    with FlopCounterMode(display=False) as counter:
        for _ in range(cfg.train.n_critic):
            with torch.no_grad():
                fake = G(z, y)
            discriminator_objective(cfg.loss, D, real, fake, y, same, plain).backward()
        fake = G(z, y)
        loss = generator_objective(cfg.loss, D, fake, y, real, y, same, plain, z)
        loss.backward(inputs=list(G.parameters()))
    return counter.get_total_flops() * cfg.train.batch_size / probe_batch


def _img_s(cfg: GANConfig, split: Split) -> float:
    """Steady-state img/s: (images of the long run - the short run's) / (T_long - T_short), so start-up and
    compilation, paid by both, cancel."""
    quarter = cfg.train.model_copy(update={"steps": max(1, cfg.train.steps // 4)})
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, tc in enumerate((quarter, cfg.train)):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            train(cfg.model_copy(update={"train": tc}), split, f"{tmp}/{i}", resume=False, progress=False)
            seconds.append(time.perf_counter() - t0)
    images = (cfg.train.steps - quarter.steps) * cfg.train.batch_size * cfg.train.n_critic
    return images / max(seconds[1] - seconds[0], 1e-9)


def run(
    steps: int = 300,
    batch: int = 256,
    budget_s: float = 240.0,
    device: str = "cuda",
    models: tuple[Model, ...] = MODELS,
    variants: tuple = VARIANTS,
    service: bool = True,
) -> list[dict]:
    if device == "cuda" and not torch.cuda.is_available():
        return [
            {
                "benchmark": "GPU training throughput and service on CUDA",
                "ratio": "skipped",
                "note": "no CUDA device on this machine: GPU rows still to be measured",
            }
        ]
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    peak = peak_bf16_flops(name)
    start = time.monotonic()
    rows: list[dict] = []

    def error_row(label: str, note: str) -> None:
        rows.append(
            {"benchmark": label, "ratio": "error" if note != "time budget" else "skipped", "note": note}
        )

    for model in models:
        split = _split(model.resolution)
        fp32: float | None = None
        for label, precision, comp in variants:
            bench = f"GPU train {model.label} {label} ({name})"
            if time.monotonic() - start > budget_s:
                error_row(bench, "time budget")
                continue
            cfg = _config(model, precision, comp, steps, batch, device)
            try:
                img_s = _img_s(cfg, split)
                flops = step_flops(cfg, split)
            except Exception as exc:  # one failing variant must not hide the others
                error_row(bench, f"{type(exc).__name__}: {exc}"[:200])
                continue
            achieved = flops * img_s / (batch * cfg.train.n_critic)
            share = f"{achieved / peak:.1%} of the bf16 peak" if peak else "unknown peak"
            if fp32 is None and precision == "fp32":
                fp32 = img_s
            rows.append(
                {
                    "benchmark": bench,
                    "ours": f"{img_s:.0f} img/s",
                    "reference": f"{fp32:.0f} img/s (fp32)" if fp32 else "-",
                    "ratio": fp32 / img_s if fp32 else "-",
                    "target": "bf16 >= 50% of peak (ratio < 1: faster than fp32)",
                    "note": f"{achieved / 1e12:.1f} TFLOP/s = {share}; {flops / 1e9:.1f} GFLOP/step; "
                    f"batch {batch}, {steps} steps",
                }
            )
    if service and device == "cuda":
        rows += _service_rows(start, budget_s)
    return rows


def _service_rows(start: float, budget_s: float) -> list[dict]:
    import onnxruntime as ort

    from bench.bench_service import run as service_run

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return [
            {"benchmark": "service on CUDA", "ratio": "skipped", "note": "onnxruntime has no CUDA provider"}
        ]
    if time.monotonic() - start > budget_s + 60:
        return [{"benchmark": "service on CUDA", "ratio": "skipped", "note": "time budget"}]
    try:
        return service_run(clients=(32,), device="cuda", limit_s=30.0)
    except Exception as exc:
        return [
            {"benchmark": "service on CUDA", "ratio": "error", "note": f"{type(exc).__name__}: {exc}"[:200]}
        ]


if __name__ == "__main__":
    for r in run():
        print(r)
