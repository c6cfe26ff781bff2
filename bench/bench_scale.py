"""Scale benchmark: the data stages on a synthetic labelled image folder of N images, stage by stage.

    python -m bench.bench_scale --sizes 20000,100000        # writes a table to stdout (and --results FILE)

For each size: draws N procedurally generated 64x64 RGB PNGs in 10 classes (reproducible from --seed) in a
temp dir, then runs each stage in its own process and samples the memory of its whole process tree
(the sum of RSS over the stage and its workers, every 50 ms: an upper bound, shared pages count twice) and
its CPU time (user + system of every process seen in the tree; the cores are shared with other jobs, so CPU
seconds say what a stage costs when wall seconds say how long it waited too):

1. ingestion + validation (``ingest_source``, parallel across cores, packing the raw data into tar shards)
2. ``dvc add`` of the raw folder (its shards and tables)
3. ``dvc repro preprocess`` (resize to 64x64 RGB, split, shards)
4. one epoch of training batches (batch 64) gathered from the memory-mapped shards, as ``train`` does
5. 20 training steps of DCGAN 64x64 on the train split (RSS vs the split's size)
6. the FID reference over the val split (domain network forward in shard-sized blocks)
7. a no-change re-run of the data assets (raw_images + processed_dataset through Dagster), after a first
   materialization that records the ingest

Everything is deleted at the end; nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def _draw(root: str, seed: int, i: int) -> int:
    """Image ``i``: class ``i % 10`` sets the shape and hue; position, size and noise come from (seed, i)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([seed, i])
    c = i % 10
    bg = rng.integers(0, 80, 3)
    im = Image.new("RGB", (64, 64), tuple(int(v) for v in bg))
    d = ImageDraw.Draw(im)
    hue = np.array([(c * 25) % 256, (c * 77 + 60) % 256, (255 - c * 23) % 256])
    color = tuple(int(v) for v in np.clip(hue + rng.integers(-30, 30, 3), 0, 255))
    x, y, r = (int(v) for v in [*rng.integers(12, 52, 2).tolist(), int(rng.integers(6, 14))])
    box = (x - r, y - r, x + r, y + r)
    [d.ellipse, d.rectangle, d.polygon][c % 3](
        box if c % 3 < 2 else [(x, y - r), (x - r, y + r), (x + r, y + r)], fill=color
    )
    if c >= 5:  # the upper classes carry a stripe: a second feature to learn
        d.line((0, (c * 6) % 64, 63, (c * 6) % 64), fill=(255 - color[0], color[1], 255 - color[2]), width=2)
    arr = np.asarray(im, dtype=np.int16) + rng.integers(-8, 9, (64, 64, 3))
    path = Path(root) / f"class{c}" / f"{i:07d}.png"
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, optimize=False)
    return path.stat().st_size


def make_folder(root: Path, n: int, seed: int = 0) -> int:
    """N labelled PNGs under ``root/class<k>/``, drawn across all cores; returns their total bytes."""
    from ganlib.data.parallel import ordered_map

    for c in range(10):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    return sum(ordered_map(partial(_draw, str(root), seed), range(n), chunksize=256))


def _tree_memory(pid: int, cpu: dict[int, float] | None = None) -> tuple[int, int]:
    """(RSS, anonymous + shmem RSS) in bytes, summed over ``pid`` and its descendants (Linux /proc); also
    records each process's own CPU seconds (user + system) so far in ``cpu``.

    RSS counts mapped file pages too: the shared libraries (torch's CUDA build alone maps ~650 MB) and the
    page cache of memory-mapped shards, which the kernel drops under pressure. The anonymous part is the
    memory a stage allocated itself: what has to fit in RAM."""
    import psutil

    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    rss = anon = 0
    for q in procs:
        with contextlib.suppress(psutil.Error):
            t = q.cpu_times()  # its own time only: children's would count a reaped worker twice
            if cpu is not None:
                cpu[q.pid] = max(cpu.get(q.pid, 0.0), t.user + t.system)
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":", 1) for line in Path(f"/proc/{q.pid}/status").read_text().splitlines()
            )
            kb = {
                k: int(v.split()[0]) * 1024
                for k, v in fields.items()
                if k in ("VmRSS", "RssAnon", "RssShmem")
            }
            rss += kb.get("VmRSS", 0)
            anon += kb.get("RssAnon", 0) + kb.get("RssShmem", 0)
    return rss, anon


def run_stage(cmd: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run ``cmd``; wall seconds, its own ``work_s`` when it prints one, its tree's peak memory and CPU
    seconds (each process's last sample: a process that lives under 50 ms is missed)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak, cpu = [0, 0], {}

    def sample() -> None:
        while proc.poll() is None:
            rss, anon = _tree_memory(proc.pid, cpu)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], anon)
            time.sleep(0.05)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    t.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    work = [json.loads(line[6:])["work_s"] for line in out.splitlines() if line.startswith("BENCH ")]
    return {
        "wall_s": wall,
        "work_s": work[-1] if work else wall,
        "cpu_s": sum(cpu.values()),
        "load": os.getloadavg()[0],  # the machine's 1-minute load as the stage ends (2 cores; others' jobs)
        "peak_rss": peak[0],
        "peak_anon": peak[1],
    }


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", DVC_NO_ANALYTICS="1", PYTHONPATH=str(REPO))
    env["PATH"] = os.path.dirname(PY) + os.pathsep + env.get("PATH", "")
    return env


INGEST = """
import sys
from pathlib import Path
import time, json
from ganlib.data.sources import ingest_source
t0 = time.perf_counter()
r = ingest_source(sys.argv[1], Path(sys.argv[2]))
print("BENCH", json.dumps({"work_s": time.perf_counter() - t0}))
"""

EPOCH = """
import sys, time, json
from ganlib.data.shards import load_split
from ganlib.pixels import to_model_range
from ganlib.batch_order import ImageBatches, epoch_batches
t0 = time.perf_counter()
split = load_split(sys.argv[1], "train")
reader, n = ImageBatches(split.images), 0
for _, idx in zip(range(len(split) // 64), epoch_batches(len(split), 64, seed=0, start_batch=0)):
    batch, _ = reader[idx]
    to_model_range(batch)
    n += len(idx)
print("BENCH", json.dumps({"work_s": time.perf_counter() - t0}))
"""

TRAIN = """
import sys, tempfile, time, json
from ganlib.config import load_config
from ganlib.data.shards import load_split
from ganlib.training import train
t0 = time.perf_counter()
split = load_split(sys.argv[1], "train")
cfg = load_config("dcgan", {"train": {"steps": 20, "batch_size": 64, "checkpoint_every": 20, "device": "cpu"}})
with tempfile.TemporaryDirectory() as out:
    r = train(cfg, split, out, resume=False, progress=False)
print("BENCH", json.dumps({"work_s": time.perf_counter() - t0}))
"""

REFERENCE = """
import sys, time, json
from pathlib import Path
from ganlib.scoring import compute_reference
from ganlib.metrics.backbones.domain import DomainBackbone, DomainNet, DomainNetConfig
net = DomainNet(DomainNetConfig("classifier", 3, 10))  # untrained: the pass over the data is what is timed
t0 = time.perf_counter()
ref = compute_reference(DomainBackbone(net, "bench"), sys.argv[1], Path(sys.argv[2]))
print("BENCH", json.dumps({"work_s": time.perf_counter() - t0}))
"""

ASSETS = """
import sys, time, json
import dagster as dg
from pipelines.assets.data import processed_dataset, raw_images
from pipelines.definitions import build_resources
ws = sys.argv[1]
t0 = time.perf_counter()
dg.materialize([raw_images, processed_dataset], resources=build_resources(ws, ws + "/../store"))
print("BENCH", json.dumps({"work_s": time.perf_counter() - t0}))
"""


def bench_size(n: int, seed: int, tmp: Path) -> list[dict]:
    from pipelines.dvc import init_workspace

    src, ws = tmp / "src", tmp / "ws"
    t0 = time.perf_counter()
    src_bytes = make_folder(src, n, seed)
    gen_s = time.perf_counter() - t0
    init_workspace(ws, REPO)
    params = ws / "params.yaml"
    text = (
        params.read_text().replace("name: digits", "name: synth").replace("source: digits", f"source: {src}")
    )
    params.write_text(text.replace("resolution: 32", "resolution: 64").replace("channels: 1", "channels: 3"))
    env, raw = _env(), ws / "data" / "raw" / "synth"
    dvc = str(Path(PY).with_name("dvc"))
    rows = [{"stage": "generate the folder (not a pipeline stage)", "n": n, "wall_s": gen_s, "work_s": gen_s}]
    stages = [
        ("ingest + validate", [PY, "-c", INGEST, str(src), str(raw)]),
        ("dvc add data/raw", [dvc, "add", "-q", "data/raw/synth"]),
        ("dvc repro preprocess", [dvc, "repro", "preprocess"]),
        ("one epoch of batches (mmap)", [PY, "-c", EPOCH, str(ws / "data/processed")]),
        ("train 20 steps DCGAN 64px", [PY, "-c", TRAIN, str(ws / "data/processed")]),
        (
            "FID reference (val split)",
            [PY, "-c", REFERENCE, str(ws / "data/processed"), str(tmp / "ref.npz")],
        ),
        ("data assets, first run (records the ingest)", [PY, "-c", ASSETS, str(ws)]),
        ("data assets, no-change re-run", [PY, "-c", ASSETS, str(ws)]),
    ]
    meta = None
    for name, cmd in stages:
        print(f"  {n}: {name} ...", file=sys.stderr, flush=True)
        r = run_stage(cmd, ws, env)
        if name == "dvc repro preprocess":
            meta = json.loads((ws / "data/processed/meta.json").read_text())
        images = meta["counts"]["train"] if meta and name.startswith(("one epoch", "train")) else n
        if name.startswith("train 20"):
            images = 20 * 64
        if name.startswith("FID"):
            images = meta["counts"]["val"]
        rows.append({"stage": name, "n": images, **r})
    processed = sum(f.stat().st_size for f in (ws / "data/processed").rglob("*") if f.is_file())
    train_bytes = sum(f.stat().st_size for f in (ws / "data/processed/train").glob("images-*.npy"))
    for r in rows:
        r.update(size=n, raw_bytes=src_bytes, processed_bytes=processed, train_bytes=train_bytes)
    return rows


def table(results: list[dict]) -> str:
    """img/s is over the stage's own work (its process start and imports excluded; DVC: the whole command);
    the ratios compare peak memory with the same stage at the first (smallest) size."""
    mb = 1 << 20
    out = [
        "| images | stage | items | work (s) | process wall (s) | img/s | CPU (s) | img per CPU-s | load | "
        "peak RSS (MB) | x smallest | peak anon RSS (MB) | x smallest |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    first = [r for r in results if r["size"] == results[0]["size"]]
    base = {r["stage"]: (r.get("peak_rss"), r.get("peak_anon")) for r in first}
    for r in results:
        if "peak_rss" not in r:
            continue
        b_rss, b_anon = base.get(r["stage"], (None, None))
        out.append(
            f"| {r['size']:,} | {r['stage']} | {r['n']:,} | {r['work_s']:.1f} | {r['wall_s']:.1f} | "
            f"{r['n'] / r['work_s']:,.0f} | {r['cpu_s']:.1f} | {r['n'] / max(r['cpu_s'], 1e-9):,.0f} | "
            f"{r['load']:.1f} | "
            f"{r['peak_rss'] / mb:,.0f} | {r['peak_rss'] / b_rss:.2f} | "
            f"{r['peak_anon'] / mb:,.0f} | {r['peak_anon'] / b_anon:.2f} |"
        )
    out.append("")
    for r in results:
        if "peak_rss" not in r:
            out.append(
                f"{r['size']:,} images: raw PNGs {r['raw_bytes'] / mb:,.0f} MB (drawn in {r['wall_s']:.0f} s), "
                f"processed {r['processed_bytes'] / mb:,.0f} MB, of which the train split {r['train_bytes'] / mb:,.0f} MB"
            )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,100000")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="where the temp dirs go (default: the system temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = ap.parse_args(argv)
    results: list[dict] = []
    for n in (int(s) for s in args.sizes.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix=f"bench-scale-{n}-", dir=args.tmp))
        try:
            results.extend(bench_size(n, args.seed, tmp))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
