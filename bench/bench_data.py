"""Benchmark: is data loading ever the bottleneck? Loader images/s vs the DCGAN training step's images/s.

Run ``python bench/bench_data.py`` (``--root data/processed`` to use a real processed dataset); ``run()``
returns the numbers as a dict for a bench runner. Both are measured in this process, on one device:

- loader: batches drawn exactly as ``ganlib.training.train`` draws them (``epoch_batches`` index batches,
  gathered from the memory-mapped uint8 shards by ``ImageBatches``, ``to_model_range``: what the training
  process does with ``num_workers=0`` and each DataLoader worker does otherwise; timed here in one process,
  i.e. the rate of a single worker), and, as an upper bound, indexing a device-resident copy of the split;
- training: ``ganlib.training.train`` on the DCGAN config, same batch size, same split.

The ratio loader/training must stay well above 1: then the GPU (or CPU) never waits for data.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Runnable as a plain script from a checkout without an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ganlib.batch_order import ImageBatches, epoch_batches
from ganlib.config import load_config
from ganlib.data.shards import Split, load_split, write_split
from ganlib.devices import select_device
from ganlib.pixels import to_model_range
from ganlib.training import train


def synthetic_split(root: Path, n: int, resolution: int, seed: int = 0) -> Split:
    """A processed dataset in the real shard format (memory-mapped on load), with random pixels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 1, resolution, resolution), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64) % 10
    write_split(root, "train", images, labels)
    meta = {"resolution": resolution, "channels": 1, "class_names": [str(i) for i in range(10)]}
    (root / "meta.json").write_text(json.dumps({**meta, "counts": {"train": n, "val": 0}}))
    return load_split(root, "train")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_rate(split: Split, batch_size: int, batches: int, device: torch.device, resident: bool) -> float:
    """Images/s of the training loop's batch path, without the model (best of two passes)."""
    images = torch.from_numpy(np.ascontiguousarray(split.images)).to(device) if resident else None
    reader, best = ImageBatches(split.images), 0.0
    for _ in range(2):
        order = epoch_batches(len(split.images), batch_size, seed=0, start_batch=0)
        _sync(device)
        t0 = time.perf_counter()
        for _, idx in zip(range(batches), order, strict=False):
            # resident: index the device copy; else what a DataLoader worker does, then the copy to the device
            batch = images[idx.to(device)] if images is not None else reader[idx][0].to(device)
            real = to_model_range(batch)
        _sync(device)
        best = max(best, batches * batch_size / (time.perf_counter() - t0))
        del real
    return best


def training_rate(split: Split, batch_size: int, steps: int, device: str) -> float:
    """Images/s that ``train`` consumes on the DCGAN config (its own measurement, data loading included)."""
    overrides = {
        "train": {"steps": steps, "batch_size": batch_size, "checkpoint_every": steps, "device": device},
    }
    cfg = load_config("dcgan", overrides)
    with tempfile.TemporaryDirectory() as out:
        return train(cfg, split, out, resume=False, progress=False).images_per_sec


def run(
    root: str | Path | None = None,
    n: int = 16384,
    resolution: int = 32,
    batch_size: int = 64,
    batches: int = 400,
    steps: int = 30,
    device: str = "auto",
) -> dict[str, Any]:
    """Time both; ``root``: a processed dataset (else a synthetic one of ``n`` images in a temp dir)."""
    dev = select_device(device)
    with tempfile.TemporaryDirectory() as tmp:
        split = load_split(root, "train") if root else synthetic_split(Path(tmp), n, resolution)
        resident = loader_rate(split, batch_size, batches, dev, resident=True)
        mmap = loader_rate(split, batch_size, batches, dev, resident=False)
        trained = training_rate(split, batch_size, steps, dev.type)
        shape = tuple(split.images.shape)
    return {
        "device": str(dev),
        "images": shape[0],
        "image_shape": shape[1:],
        "batch_size": batch_size,
        "loader_resident_img_s": resident,
        "loader_mmap_img_s": mmap,
        "train_img_s": trained,
        "ratio_resident": resident / trained,
        "ratio_mmap": mmap / trained,
        "loader_is_bottleneck": min(resident, mmap) <= trained,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, help="a processed dataset (data/processed); default: synthetic")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    r = run(args.root, batch_size=args.batch_size, steps=args.steps, device=args.device)
    print(
        f"data loading vs DCGAN training, {r['images']} images of {r['image_shape']}, batch {r['batch_size']}"
    )
    print(f"device: {r['device']}")
    print(f"{'path':<42}{'images/s':>12}{'x training':>12}")
    print(
        f"{'loader, device-resident (num_workers=0)':<42}{r['loader_resident_img_s']:>12.0f}{r['ratio_resident']:>12.1f}"
    )
    print(f"{'loader, mmap shards (one worker)':<42}{r['loader_mmap_img_s']:>12.0f}{r['ratio_mmap']:>12.1f}")
    print(f"{'training step (G + D, data included)':<42}{r['train_img_s']:>12.0f}{1.0:>12.1f}")
    verdict = (
        "the LOADER IS THE BOTTLENECK" if r["loader_is_bottleneck"] else "the loader is not the bottleneck"
    )
    print(verdict)


if __name__ == "__main__":
    main()
