"""OnnxGenerator's ONNX Runtime session settings: what it asks for is what the session runs with."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from ganlib.serving import OnnxGenerator

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's


def _threads(gen: OnnxGenerator) -> int:
    return gen.session.get_session_options().intra_op_num_threads


def test_defaults_one_thread_sequential_all_optimizations(onnx_models, monkeypatch):
    monkeypatch.delenv("GAN_ORT_THREADS", raising=False)
    gen = OnnxGenerator(onnx_models["cond"].path, device="cpu")
    opts = gen.session.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_threads_from_argument_and_environment(onnx_models, monkeypatch):
    path = onnx_models["cond"].path
    monkeypatch.setenv("GAN_ORT_THREADS", "2")
    assert _threads(OnnxGenerator(path, device="cpu")) == 2
    assert _threads(OnnxGenerator(path, device="cpu", threads=3)) == 3  # the argument wins
    spinning = OnnxGenerator(path, device="cpu", spin=True).session.get_session_options()
    assert spinning.get_session_config_entry("session.intra_op.allow_spinning") == "1"


@pytest.mark.parametrize(
    ("env", "threads", "match"), [("two", None, "GAN_ORT_THREADS"), ("1", -1, "threads")]
)
def test_bad_thread_settings_say_what_is_wrong(onnx_models, monkeypatch, env, threads, match):
    monkeypatch.setenv("GAN_ORT_THREADS", env)
    with pytest.raises(ValueError, match=match):
        OnnxGenerator(onnx_models["cond"].path, device="cpu", threads=threads)
