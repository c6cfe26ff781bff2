"""Dynamic batching: concurrent requests share ONNX Runtime runs, and each caller still gets exactly its own
images, the same as the unbatched generator gives for the same seeds; the service under concurrent
clients on loopback (correctness only: speed is bench/bench_service.py's job)."""

from __future__ import annotations

import http.client
import threading
import time

import numpy as np
import pytest
from serving_helpers import manifest_fields
from test_serving_consumer import _load_service

from ganlib.batching import BatchingGenerator
from ganlib.serving import OnnxGenerator, make_grid, to_png
from ganlib.store import publish

JOIN_S = 120  # every thread in these tests must finish well within this


class _CountingGenerator(OnnxGenerator):
    """Records the batch size of every run, to see that requests were joined. The first run takes
    ``first_delay_s`` longer, so requests released together find the session busy and queue up, however
    the threads happen to be scheduled (a lone request would run at once, unjoined)."""

    def __init__(self, *args, first_delay_s: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.runs: list[int] = []
        self.first_delay_s = first_delay_s

    def run(self, z, class_id=None):
        self.runs.append(len(z))
        if len(self.runs) == 1:
            time.sleep(self.first_delay_s)
        return super().run(z, class_id)


def _in_threads(fn, args_list: list[tuple]) -> list:
    """fn(*args) for each args, all released at once; results in order; exceptions re-raised."""
    results: list = [None] * len(args_list)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(args_list))

    def call(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(*args_list[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(args_list))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_S)
    assert not any(t.is_alive() for t in threads), "a request never returned"
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("name", ["cond", "uncond"])
def test_each_caller_gets_exactly_its_own_images(onnx_models, name):
    path = onnx_models[name].path
    reference = OnnxGenerator(path, device="cpu")
    gen = _CountingGenerator(path, device="cpu", first_delay_s=1.0)
    batcher = BatchingGenerator(gen, window_ms=50.0, max_images=64, direct_from=8)
    conditional = name == "cond"
    # Different sizes, seeds and classes, so a mix-up between requests cannot go unnoticed.
    requests = [(1 + i % 5, 100 + i, (i % 10 if conditional and i % 3 else None)) for i in range(24)]
    try:
        got = _in_threads(batcher.generate, requests)
    finally:
        batcher.close()
    for (n, seed, class_id), images in zip(requests, got, strict=True):
        expected = reference.generate(n, seed=seed, class_id=class_id)
        assert images.dtype == np.uint8 and images.shape == expected.shape
        np.testing.assert_array_equal(images, expected)
    assert len({img.tobytes() for img in got}) == len(got)  # no two requests got the same answer
    assert sum(gen.runs) == sum(n for n, _, _ in requests)
    assert len(gen.runs) < len(requests)  # requests were joined into shared runs


def test_large_requests_run_directly_and_errors_reach_the_caller(onnx_models):
    gen = _CountingGenerator(onnx_models["cond"].path, device="cpu")
    batcher = BatchingGenerator(gen, direct_from=8)
    try:
        assert batcher.generate(8, seed=1).shape[0] == 8 and gen.runs == [8]
        with pytest.raises(ValueError, match="class_id"):
            batcher.generate(2, seed=0, class_id=99)  # checked in the caller's thread
        assert batcher.generate(2, seed=3).shape[0] == 2  # the worker is still alive
    finally:
        batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.generate(1)


def test_a_failing_run_fails_every_request_in_its_batch(onnx_models):
    class Broken(OnnxGenerator):
        def run(self, z, class_id=None):
            raise RuntimeError("session exploded")

    batcher = BatchingGenerator(Broken(onnx_models["cond"].path, device="cpu"), window_ms=20.0)
    try:
        results = _in_threads(lambda s: _catch(batcher.generate, 1, s), [(s,) for s in range(6)])
    finally:
        batcher.close()
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)


def _catch(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:
        return exc


@pytest.fixture
def servers(onnx_models, tmp_path):
    """A batched and an unbatched service on loopback ephemeral ports, same model."""
    from ganlib.store import open_store

    store = open_store(tmp_path / "store")
    publish(store, "digits", "v1", onnx_models["cond"].path, manifest_fields(onnx_models["cond"]))
    service = _load_service()
    out = {}
    for mode, window in (("batched", 5.0), ("unbatched", None)):
        srv = service.create_server(
            store.uri,
            "digits",
            host="127.0.0.1",
            port=0,
            device="cpu",
            cache_dir=str(tmp_path / f"cache-{mode}"),
            batch_window_ms=window,
        )
        out[mode] = (srv, service.serve_in_thread(srv))
    yield {mode: srv for mode, (srv, _) in out.items()}
    for srv, thread in out.values():
        srv.shutdown()
        srv.server_close()
        thread.join(5)
        assert not thread.is_alive()


def _client(port: int, queries: list[str]) -> list[bytes]:
    """One keep-alive connection, requests one after another, as a real client would."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    bodies = []
    try:
        for q in queries:
            conn.request("GET", f"/generate?{q}")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and resp.headers["Content-Type"] == "image/png", body[:200]
            bodies.append(body)
    finally:
        conn.close()
    return bodies


def test_service_concurrent_clients_get_their_own_pngs(servers, onnx_models):
    clients, per_client = 12, 3  # bounded: 36 requests per server
    queries = [
        [
            f"n={1 + (c + i) % 4}&seed={1000 + c * per_client + i}" + (f"&class_id={c % 10}" if c % 2 else "")
            for i in range(per_client)
        ]
        for c in range(clients)
    ]
    ports = {mode: srv.server_address[1] for mode, srv in servers.items()}
    batched = _in_threads(_client, [(ports["batched"], q) for q in queries])
    unbatched = _in_threads(_client, [(ports["unbatched"], q) for q in queries])
    assert batched == unbatched  # byte-identical PNGs, request by request

    # And both are what the generator makes for that query, computed here independently of the service.
    reference = OnnxGenerator(onnx_models["cond"].path, device="cpu")
    c, i = 3, 2
    n, seed = 1 + (c + i) % 4, 1000 + c * per_client + i
    assert batched[c][i] == to_png(make_grid(reference.generate(n, seed=seed, class_id=c % 10)))
    assert len({b for bodies in batched for b in bodies}) == clients * per_client
