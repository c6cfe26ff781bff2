"""ONNX export: one self-contained file, the I/O contract, metadata, and parity with PyTorch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from model_helpers import EXPORT_METADATA, spread_generator

from ganlib.export import ParityError, check_parity, export_onnx

# Runs in a fresh interpreter with onnxruntime only, like a downstream service would.
FRESH_ORT = """
import sys, numpy as np, onnxruntime as ort
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
feeds = dict(np.load(sys.argv[2]))
out = {}
for b in (1, 5):
    out[f"image_{b}"] = sess.run(["image"], {k: v[:b] for k, v in feeds.items()})[0]
np.savez(sys.argv[3], **out)
assert "torch" not in sys.modules
"""


def test_single_self_contained_file(exported):
    _, info = exported
    assert sorted(p.name for p in info.path.parent.iterdir()) == ["generator.onnx"]  # no .data side file
    model = onnx.load(str(info.path), load_external_data=False)
    initializers = list(model.graph.initializer)
    assert initializers and all(t.data_location == onnx.TensorProto.DEFAULT for t in initializers)
    onnx.checker.check_model(model, full_check=True)
    assert info.size == info.path.stat().st_size


def test_io_contract_and_opset(exported):
    g, info = exported
    model = onnx.load(str(info.path))
    assert info.opset == 18
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [18]
    names = ["z", "class_id"] if g.num_classes else ["z"]
    assert [i.name for i in model.graph.input] == names
    assert [o.name for o in model.graph.output] == ["image"]
    assert info.inputs[0] == {"name": "z", "dtype": "float32", "shape": ["N", 16]}
    if g.num_classes:
        assert info.inputs[1] == {"name": "class_id", "dtype": "int64", "shape": ["N"]}
    assert info.outputs == [{"name": "image", "dtype": "float32", "shape": ["N", 1, 32, 32]}]
    batch_dims = [v.type.tensor_type.shape.dim[0] for v in [*model.graph.input, *model.graph.output]]
    assert all(d.dim_param and not d.dim_value for d in batch_dims)  # symbolic, i.e. dynamic
    assert info.manifest_fields() == {"opset": 18, "inputs": info.inputs, "outputs": info.outputs}


def test_metadata_props(exported):
    g, info = exported
    props = {p.key: p.value for p in onnx.load(str(info.path)).metadata_props}
    for key, value in EXPORT_METADATA.items():
        assert props[key] == value
    assert props["z_dim"] == "16" and props["num_classes"] == str(g.num_classes)
    assert json.loads(props["model_spec"])["family"] == "dcgan"
    assert props["exporter"] == "dynamo"
    assert info.metadata == props


def test_fresh_process_onnxruntime_matches_torch(exported, tmp_path):
    g, info = exported
    rng = np.random.default_rng(7)
    feeds = {"z": rng.standard_normal((5, 16), dtype=np.float32)}
    if g.num_classes:
        feeds["class_id"] = np.array([3, 0, 9, 3, 5], dtype=np.int64)
    np.savez(tmp_path / "in.npz", **feeds)
    cmd = [
        sys.executable,
        "-c",
        FRESH_ORT,
        str(info.path),
        str(tmp_path / "in.npz"),
        str(tmp_path / "out.npz"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = np.load(tmp_path / "out.npz")

    with torch.no_grad():
        y = torch.from_numpy(feeds["class_id"]) if g.num_classes else None
        ref = g(torch.from_numpy(feeds["z"]), y).numpy()
    assert ref.std() > 0.1  # a meaningful comparison, not two arrays of ~0
    for b in (1, 5):
        got = out[f"image_{b}"]
        assert got.shape == (b, 1, 32, 32)
        err = float(np.abs(got - ref[:b]).max())
        print(f"fresh-process parity, batch {b}: max abs err {err:.3g}")
        assert err < 1e-4
    # Batch independence: eval-mode BatchNorm, so image 0 is the same alone or in a batch of 5.
    np.testing.assert_allclose(out["image_1"][0], out["image_5"][0], atol=1e-6)


def test_check_parity_passes(exported):
    g, info = exported
    result = check_parity(g, info.path)
    print(f"check_parity: max abs err {result.max_abs_err:.3g} at batch sizes {result.batch_sizes}")
    assert result.ok and result.max_abs_err < 1e-4 and result.batch_sizes == (16, 1)


def test_broken_parity_raises(exported):
    g, info = exported
    g = copy.deepcopy(g)
    with torch.no_grad():
        g.to_rgb.bias += 0.05  # the torch model drifts after export
    with pytest.raises(ParityError, match="max abs error"):
        check_parity(g, info.path)
    result = check_parity(g, info.path, raise_on_failure=False)
    assert not result.ok and result.max_abs_err > 1e-3


def test_export_leaves_the_callers_model_alone(tmp_path):
    g = spread_generator(0).train()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    export_onnx(g, tmp_path / "g.onnx", metadata=EXPORT_METADATA)
    assert g.training  # the export used an eval-mode copy
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())
    check_parity(g, tmp_path / "g.onnx")  # and the export is of eval mode, whatever mode g was in


def test_required_metadata_and_contradictions(tmp_path):
    g = spread_generator(0)
    with pytest.raises(ValueError, match="fid_backbone"):
        export_onnx(
            g, tmp_path / "a.onnx", metadata={k: v for k, v in EXPORT_METADATA.items() if k != "fid_backbone"}
        )
    with pytest.raises(ValueError, match="contradicts"):
        export_onnx(g, tmp_path / "b.onnx", metadata={**EXPORT_METADATA, "z_dim": "99"})
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "b.onnx").exists()


def test_torchscript_exporter_escape_hatch(tmp_path):
    g = spread_generator(10)
    info = export_onnx(g, tmp_path / "generator.onnx", metadata=EXPORT_METADATA, exporter="torchscript")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator.onnx"]
    assert info.exporter == "torchscript" and info.inputs[1]["shape"] == ["N"]
    assert check_parity(g, info.path).ok
