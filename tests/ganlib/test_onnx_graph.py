"""The inference graph export_onnx writes: BatchNorm folded and ConvTranspose rewritten with parity kept for
every generator family; no debug info (stack traces, source paths); the same weights, the same bytes."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from model_helpers import EXPORT_METADATA, spread_generator
from onnx import TensorProto, helper, numpy_helper

import ganlib
from ganlib.export import check_parity, export_onnx
from ganlib.onnx_graph import rewrite_convtranspose

REPO = Path(ganlib.__file__).resolve().parents[1]

# Exports in a fresh interpreter (another process, another working directory) from the same seeded weights.
FRESH_EXPORT = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/tests"]  # the checkout's ganlib first, then the test helpers
from model_helpers import EXPORT_METADATA, spread_generator
from ganlib.export import export_onnx
export_onnx(spread_generator(10, seed=3), sys.argv[2], metadata=EXPORT_METADATA)
"""


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _with_bn_statistics(g: torch.nn.Module) -> torch.nn.Module:
    """Running statistics away from (0, 1), so a fold that ignored them would break parity."""
    g.train()
    with torch.no_grad():
        for _ in range(3):
            z, y = g.sample_inputs(32)
            g(z * 2.0 + 0.5, y)
    return g.eval()


@pytest.mark.parametrize("family", ["dcgan", "sngan", "stylegan_lite"])
@pytest.mark.parametrize("num_classes", [10, 0], ids=["conditional", "unconditional"])
def test_no_batchnorm_left_and_parity_kept(family, num_classes, tmp_path):
    g = _with_bn_statistics(spread_generator(num_classes, seed=1, family=family))
    plain = export_onnx(g, tmp_path / "plain.onnx", metadata=EXPORT_METADATA, optimize=False)
    info = export_onnx(g, tmp_path / "generator.onnx", metadata=EXPORT_METADATA)
    ops = _ops(info.path)
    assert "BatchNormalization" not in ops
    if family == "sngan":  # pre-activation BN the exporter leaves alone: lowered to a scale and shift
        assert "BatchNormalization" in _ops(plain.path) and info.rewrites["bn_lowered"] > 0
    if family == "dcgan":  # projection -> Gemm; the two stride-2 upsamplers -> phases; the RGB layer stays
        assert ops.count("ConvTranspose") == 1 and info.rewrites["convtranspose_rewritten"] == 3
    result = check_parity(g, info.path, atol=1e-4)
    print(f"{family} nc={num_classes}: {info.rewrites}, parity {result.max_abs_err:.2g}")
    assert result.ok and result.max_abs_err < 1e-4
    assert info.inputs[0]["shape"] == ["N", 16] and info.outputs[0]["shape"][0] == "N"


def test_batchnorm_folded_into_the_producing_convolutions(tmp_path):
    # The TorchScript exporter leaves DCGAN's BatchNorms after the ConvTransposes: our pass folds them.
    g = spread_generator(0)
    plain = export_onnx(
        g, tmp_path / "plain.onnx", metadata=EXPORT_METADATA, exporter="torchscript", optimize=False
    )
    assert _ops(plain.path).count("BatchNormalization") == 3
    info = export_onnx(g, tmp_path / "generator.onnx", metadata=EXPORT_METADATA, exporter="torchscript")
    assert "BatchNormalization" not in _ops(info.path) and info.rewrites["bn_folded"] == 3
    assert check_parity(g, info.path).max_abs_err < 1e-4


@pytest.mark.parametrize(("cin", "cout", "h", "w", "bias"), [(12, 8, 3, 5, True), (8, 16, 4, 4, False)])
def test_convtranspose_phases_match_torch(cin, cout, h, w, bias):
    """The phase rewrite alone, on a one-node graph, against torch's conv_transpose2d."""
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((cin, cout, 4, 4), dtype=np.float32)
    b = rng.standard_normal(cout, dtype=np.float32) if bias else None
    x = rng.standard_normal((3, cin, h, w), dtype=np.float32)
    inits = [numpy_helper.from_array(weight, "W")] + ([numpy_helper.from_array(b, "B")] if bias else [])
    node = helper.make_node(
        "ConvTranspose", ["x", "W", *(["B"] if bias else [])], ["y"], name="up", strides=[2, 2], pads=[1] * 4
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", cin, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", cout, 2 * h, 2 * w])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert rewrite_convtranspose(model) == 1
    assert "ConvTranspose" not in [n.op_type for n in model.graph.node]
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": x})
    ref = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(weight), None if b is None else torch.from_numpy(b), 2, 1
    ).numpy()
    assert got.shape == ref.shape == (3, cout, 2 * h, 2 * w)
    assert np.abs(got - ref).max() < 1e-4 * np.abs(ref).max()


def test_no_source_paths_or_stack_traces(tmp_path):
    info = export_onnx(spread_generator(10), tmp_path / "generator.onnx", metadata=EXPORT_METADATA)
    data = info.path.read_bytes()
    assert str(REPO).encode() not in data and b"stack_trace" not in data and b"pkg.torch" not in data
    model = onnx.load(str(info.path))
    g = model.graph
    assert not model.doc_string and not g.doc_string and not g.metadata_props
    for item in [*g.node, *g.input, *g.output, *g.value_info, *g.initializer]:
        assert not item.doc_string and not item.metadata_props, item.name
    assert {p.key for p in model.metadata_props} >= set(EXPORT_METADATA)  # the published facts stay


def test_same_weights_same_bytes(tmp_path):
    g = spread_generator(10, seed=3)
    a = export_onnx(g, tmp_path / "a" / "generator.onnx", metadata=EXPORT_METADATA)
    b = export_onnx(g, tmp_path / "b" / "generator.onnx", metadata=EXPORT_METADATA)
    assert _sha256(a.path) == _sha256(b.path)

    fresh = tmp_path / "c" / "generator.onnx"
    cmd = [sys.executable, "-c", FRESH_EXPORT, str(REPO), str(fresh)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _sha256(fresh) == _sha256(a.path)

    other = export_onnx(
        g, tmp_path / "d" / "generator.onnx", metadata={**EXPORT_METADATA, "model_version": "v2"}
    )
    assert _sha256(other.path) != _sha256(a.path)  # the caller's metadata is part of the file
