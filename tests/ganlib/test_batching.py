"""Dynamic batching: concurrent requests share ONNX Runtime runs, and each caller still gets exactly its own
images, the same as the unbatched generator gives for the same seeds (correctness only: speed is
bench/bench_service.py's job)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from concurrency import in_threads

from ganlib.batching import BatchingGenerator
from ganlib.serving import OnnxGenerator

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's


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
        got = in_threads(batcher.generate, requests)
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
        results = in_threads(lambda s: _catch(batcher.generate, 1, s), [(s,) for s in range(6)])
    finally:
        batcher.close()
    assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)


def _catch(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:
        return exc
