"""The consumer service (deploy/consumer) under load: dynamic batching vs one run per request, same run.

Two service processes serve the same published DCGAN from a local store on 127.0.0.1 (ephemeral ports),
one with batching (the default window) and one with ``--no-batching``; the benchmark starts and stops both.
Closed-loop clients (threads here, one request at a time each) send a bounded number of requests
(``GET /generate?n=<n>&seed=<unique>``), and each phase also stops at a time limit. Phases alternate
unbatched, batched, batched, unbatched at each client count, so drift in the machine's load hits both.
Reported: requests/s (completed / phase wall time) and p50/p99 latency per mode and client count.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SERVICE = Path(__file__).resolve().parents[1] / "deploy" / "consumer" / "service.py"
MODES = {"unbatched": ["--no-batching"], "batched": []}


def _publish(root: Path) -> str:
    from bench.bench_inference import META, bench_generator
    from ganlib.export import export_onnx
    from ganlib.store import open_store, publish

    info = export_onnx(bench_generator(), root / "g.onnx", metadata=META)
    publish(open_store(root / "store"), META["model_name"], "v1", info.path, info.manifest_fields())
    return str(root / "store")


class _Service:
    """One service process on an ephemeral loopback port."""

    def __init__(self, store: str, cache: Path, flags: list[str], device: str = "cpu") -> None:
        cmd = [sys.executable, str(SERVICE), "--uri", store, "--model", "bench", "--host", "127.0.0.1"]
        cmd += ["--port", "0", "--device", device, *flags]
        env = {**os.environ, "GAN_CACHE_DIR": str(cache), "PYTHONPATH": str(SERVICE.parents[2])}
        env["PYTHONUNBUFFERED"] = "1"  # the "serving ... at URL" line must reach us at once
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        line = self.proc.stdout.readline()  # "serving ... at http://127.0.0.1:PORT"; blocks until bound
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not match:
            self.close()
            raise RuntimeError(f"service did not start: {line}{self.proc.stdout.read()[-2000:]}")
        self.port = int(match.group(1))

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _phase(port: int, clients: int, per_client: int, n: int, limit_s: float, seed0: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + limit_s

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)  # kept alive between requests
        for i in range(per_client):
            if time.perf_counter() > deadline:
                break
            t0 = time.perf_counter()
            try:
                conn.request("GET", f"/generate?n={n}&seed={seed0 + c * per_client + i}")
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200 and body[:4] == b"\x89PNG"
            except OSError as exc:
                ok, body = False, str(exc).encode()
                conn.close()
            with lock:
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors.append(body[:200].decode(errors="replace"))
        conn.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(limit_s + 120)
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return {"latencies": latencies, "wall": wall}


def _request_costs(path: Path, n: int, clients: int, device: str = "cpu") -> str:
    """Where a request's time goes, measured in this process: the part batching can shrink (inference
    alone vs a share of one run for all clients) and the part it cannot (grid + PNG, per request)."""
    from bench.bench_inference import interleaved_best
    from ganlib.serving import OnnxGenerator, make_grid, to_png

    gen = OnnxGenerator(path, device=device, batch_size=n * clients)
    alone, shared = gen.inputs(n, seed=0), gen.inputs(n * clients, seed=0)
    images = gen.generate(n, seed=0)
    t = interleaved_best(
        {
            "alone": lambda: gen.run(*alone),
            "shared": lambda: gen.run(*shared),
            "png": lambda: to_png(make_grid(images)),
        },
        rounds=30,
    )
    return (
        f"in-process per request: inference alone {t['alone'] * 1e3:.2f} ms, as 1/{clients} of a batch "
        f"{t['shared'] / clients * 1e3:.2f} ms; grid + PNG {t['png'] * 1e3:.2f} ms"
    )


def run(
    clients: tuple[int, ...] = (1, 32),
    requests: int = 320,
    n: int = 1,
    limit_s: float = 60.0,
    device: str = "cpu",
) -> list[dict]:
    """``requests`` per phase in all (split over the clients), ``n`` images per request."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = _publish(root)
        services = {m: _Service(store, root / f"cache-{m}", flags, device) for m, flags in MODES.items()}
        try:
            seed = 0
            for c in clients:
                per_client = max(1, requests // c)
                stats = {m: {"latencies": [], "wall": 0.0} for m in MODES}
                for mode in ("unbatched", "batched", "batched", "unbatched"):
                    r = _phase(services[mode].port, c, per_client // 2 or 1, n, limit_s / 2, seed)
                    seed += c * per_client
                    stats[mode]["latencies"] += r["latencies"]
                    stats[mode]["wall"] += r["wall"]
                summary = {}
                for mode, s in stats.items():
                    lat = np.array(s["latencies"])
                    summary[mode] = {
                        "rps": len(lat) / s["wall"],
                        "p50": float(np.percentile(lat, 50)),
                        "p99": float(np.percentile(lat, 99)),
                        "count": len(lat),
                    }
                b, u = summary["batched"], summary["unbatched"]

                def fmt(x: dict) -> str:
                    return f"{x['rps']:.0f} req/s, p50 {x['p50'] * 1e3:.1f} ms, p99 {x['p99'] * 1e3:.1f} ms"

                target = ">= 3x req/s (ratio >= 3), p99 <= 2x" if c > 1 else "p50 ~ unbatched (no wait alone)"
                rows.append(
                    {
                        "benchmark": f"service throughput ({device}), {c} concurrent client(s), n={n} per "
                        "request (batched vs unbatched)",
                        "ours": fmt(b),
                        "reference": fmt(u) + " (unbatched)",
                        "ratio": b["rps"] / u["rps"],
                        "target": target,
                        "note": f"p99 ratio {b['p99'] / u['p99']:.2f}, p50 ratio {b['p50'] / u['p50']:.2f}; "
                        f"{b['count']}+{u['count']} requests on 127.0.0.1"
                        + (f"; {_request_costs(root / 'g.onnx', n, c, device)}" if c > 1 else ""),
                    }
                )
        finally:
            for s in services.values():
                s.close()
    return rows


def batch_scaling(batches: tuple[int, ...] = (1, 8, 32), rounds: int = 5) -> list[dict]:
    """What dynamic batching can win at most on this machine: ONNX Runtime's time per image at batch b vs
    batch 1, for the bench DCGAN (32 px) and a 64 px ResNet/SNGAN generator (width 64), 1 thread."""
    import torch

    from bench.bench_inference import META, bench_generator, interleaved_best
    from ganlib.export import export_onnx
    from ganlib.models import ModelSpec, build_generator
    from ganlib.serving import OnnxGenerator

    torch.manual_seed(0)
    models = {
        "DCGAN 32px (bench model)": bench_generator(),
        "ResNet/SNGAN 64px, width 64": build_generator(ModelSpec("sngan", 64, 3, 128, 10, 64, 64)).eval(),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, g in models.items():
            gen = OnnxGenerator(
                export_onnx(g, Path(tmp) / "g.onnx", metadata=META).path, device="cpu", threads=1
            )
            inputs = {b: gen.inputs(b, seed=0) for b in batches}
            calls = {b: (lambda gen=gen, x=inputs[b]: gen.run(*x)) for b in batches}
            t = interleaved_best(calls, rounds=rounds)
            for b in batches[1:]:
                rows.append(
                    {
                        "benchmark": f"ONNX Runtime CPU time per image, batch {b} vs batch 1: {label}",
                        "ours": f"{t[b] / b * 1e3:.2f} ms/img",
                        "reference": f"{t[batches[0]] * 1e3:.2f} ms/img (batch 1)",
                        "ratio": t[b] / b / t[batches[0]],
                        "target": "report (1 / ratio bounds what batching can gain)",
                        "note": "1 thread, best of interleaved rounds",
                    }
                )
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['benchmark']}: {r['ours']} vs {r['reference']}: {r['ratio']:.2f}x  {r['note']}")
