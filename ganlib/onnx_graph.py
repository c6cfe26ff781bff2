"""Inference rewrites of an exported generator graph, applied by ``ganlib.export`` before the file is written.

Every rewrite is exact algebra on constant weights (parity stays ~1e-6) and uses only standard ONNX ops, so
the result runs on any provider. What runs fastest on the CPU provider was measured (bench/RESULTS.md):

- BatchNorm (eval): folded into the Conv/ConvTranspose that feeds it (scale the weights per output channel,
  shift the bias); a BatchNorm with no such producer (pre-activation BN in SNGAN blocks) becomes one
  per-channel scale and shift (Mul, Add). No BatchNormalization node is left.
- ConvTranspose on a 1x1 input (DCGAN's latent projection) becomes Flatten, Gemm, Reshape: ONNX Runtime's
  ConvTranspose runs one small GEMM per image, the Gemm one for the whole batch (~10x faster at batch 64).
- ConvTranspose kernel 4, stride 2, pad 1 (DCGAN upsampling) becomes its four output phases, each a 2x2
  Conv with asymmetric padding, interleaved by DepthToSpace: the same multiply-adds, on ONNX Runtime's
  blocked Conv kernels instead of GEMM + col2im. Kept as ConvTranspose for fewer than
  ``PHASE_MIN_CHANNELS`` output channels (the RGB layer), where ConvTranspose is faster.
- Debug information is dropped: node/value/graph metadata (the exporter's Python stack traces with the
  exporting machine's absolute paths, FX node dumps) and doc strings, so the same weights give the same bytes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

PHASE_MIN_CHANNELS = 8


def strip_debug_info(model: onnx.ModelProto) -> None:
    """Remove doc strings and metadata from nodes, values and the graph (not the model's metadata_props,
    which carry the published facts)."""
    model.doc_string = ""
    graph = model.graph
    graph.doc_string = ""
    del graph.metadata_props[:]
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.doc_string = ""
        del value.metadata_props[:]
    for tensor in graph.initializer:
        tensor.doc_string = ""
        del tensor.metadata_props[:]
    for node in graph.node:
        node.doc_string = ""
        del node.metadata_props[:]


class _Graph:
    """The node list and constant initializers of one graph, for rewrites that replace a node in place."""

    def __init__(self, model: onnx.ModelProto) -> None:
        inferred = onnx.shape_inference.infer_shapes(model)
        self.shapes: dict[str, list[int | str]] = {}
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            dims = v.type.tensor_type.shape.dim
            self.shapes[v.name] = [d.dim_param or d.dim_value for d in dims]
        self.model = model
        self.consts = {t.name: t for t in model.graph.initializer}

    def const(self, name: str) -> np.ndarray | None:
        t = self.consts.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def add_const(self, name: str, value: np.ndarray) -> str:
        # Names derive from the node being replaced, so the same graph always gets the same names.
        if name in self.consts:
            raise ValueError(f"initializer name {name!r} already taken")
        t = numpy_helper.from_array(np.ascontiguousarray(value), name)
        self.model.graph.initializer.append(t)
        self.consts[name] = t
        return name

    def consumers(self, tensor: str) -> list[onnx.NodeProto]:
        return [n for n in self.model.graph.node if tensor in n.input]

    def is_graph_output(self, tensor: str) -> bool:
        return any(o.name == tensor for o in self.model.graph.output)

    def drop_unused_consts(self) -> None:
        used = {i for n in self.model.graph.node for i in n.input}
        keep = [t for t in self.model.graph.initializer if t.name in used]
        del self.model.graph.initializer[:]
        self.model.graph.initializer.extend(keep)


def _detached_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    # Copies: the rewrites edit nodes and then replace the graph's whole node list.
    out = []
    for node in model.graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        out.append(copy)
    return out


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _bn_affine(g: _Graph, bn: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) per channel of an inference-mode BatchNormalization with constant parameters."""
    attrs = _attrs(bn)
    if attrs.get("training_mode", 0) or len([o for o in bn.output if o]) != 1:
        return None
    params = [g.const(name) for name in bn.input[1:5]]
    if any(p is None for p in params):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
    return scale, beta - mean * scale


def fold_batchnorm(model: onnx.ModelProto) -> tuple[int, int]:
    """Fold each BatchNormalization into its producing Conv/ConvTranspose, or lower it to Mul + Add.
    Returns (folded into a conv, lowered)."""
    g = _Graph(model)
    nodes = _detached_nodes(model)
    producers = {o: n for n in nodes for o in n.output}
    folded = lowered = 0
    new_nodes: list[onnx.NodeProto] = []
    for node in nodes:
        if node.op_type != "BatchNormalization" or (affine := _bn_affine(g, node)) is None:
            new_nodes.append(node)
            continue
        scale, shift = affine
        src = node.input[0]
        conv = producers.get(src)
        w = g.const(conv.input[1]) if conv is not None and conv.op_type in ("Conv", "ConvTranspose") else None
        if (
            w is not None
            and _attrs(conv).get("group", 1) == 1
            and len(g.consumers(src)) == 1
            and not g.is_graph_output(src)
        ):
            out_axis = 1 if conv.op_type == "ConvTranspose" else 0
            b = g.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(len(scale))
            if b is not None:
                shape = [1] * w.ndim
                shape[out_axis] = -1
                new_w = (w.astype(np.float64) * scale.reshape(shape)).astype(w.dtype)
                new_b = (b.astype(np.float64) * scale + shift).astype(w.dtype)
                conv.input[1] = g.add_const(f"{conv.name}.weight_bnfold", new_w)
                if len(conv.input) > 2:
                    conv.input[2] = g.add_const(f"{conv.name}.bias_bnfold", new_b)
                else:
                    conv.input.append(g.add_const(f"{conv.name}.bias_bnfold", new_b))
                conv.output[0] = node.output[0]  # the conv now writes what the BN wrote
                folded += 1  # and the BN node is dropped
                continue
        rank = len(g.shapes.get(src, [])) or 4
        bshape = (-1, *([1] * (rank - 2)))
        dtype = np.float32
        s = g.add_const(f"{node.name}.scale", scale.astype(dtype).reshape(bshape))
        t = g.add_const(f"{node.name}.shift", shift.astype(dtype).reshape(bshape))
        scaled = f"{node.name}.scaled"
        new_nodes.append(helper.make_node("Mul", [src, s], [scaled], name=f"{node.name}.mul"))
        new_nodes.append(helper.make_node("Add", [scaled, t], [node.output[0]], name=f"{node.name}.add"))
        lowered += 1
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    g.drop_unused_consts()
    return folded, lowered


def _plain_convtranspose(node: onnx.NodeProto, w: np.ndarray | None) -> dict | None:
    """The node's attributes when it is a group-1, undilated 2-D ConvTranspose with constant weights."""
    if node.op_type != "ConvTranspose" or w is None or w.ndim != 4:
        return None
    a = _attrs(node)
    if (
        a.get("group", 1) != 1
        or any(d != 1 for d in a.get("dilations", [1, 1]))
        or any(a.get("output_padding", [0, 0]))
        or "output_shape" in a
        or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
    ):
        return None
    a.setdefault("kernel_shape", list(w.shape[2:]))
    a.setdefault("strides", [1, 1])
    a.setdefault("pads", [0, 0, 0, 0])
    return a


def _bias(g: _Graph, node: onnx.NodeProto, cout: int) -> np.ndarray | None:
    if len(node.input) > 2 and node.input[2]:
        return g.const(node.input[2])
    return np.zeros(cout, np.float32)


def _projection_as_gemm(g: _Graph, node: onnx.NodeProto, w: np.ndarray, a: dict) -> list | None:
    """ConvTranspose of a [N, Cin, 1, 1] input, no padding: out[n, o, i, j] = sum_c x[n, c] W[c, o, i, j]."""
    if g.shapes.get(node.input[0], [])[2:] != [1, 1] or any(a["pads"]):
        return None
    cin, cout, kh, kw = w.shape
    b = _bias(g, node, cout)
    if b is None:
        return None
    p = node.name
    weight = g.add_const(f"{p}.gemm_weight", w.reshape(cin, cout * kh * kw))
    bias = g.add_const(f"{p}.gemm_bias", np.repeat(b, kh * kw).astype(w.dtype))
    shape = g.add_const(f"{p}.out_shape", np.array([-1, cout, kh, kw], np.int64))
    return [
        helper.make_node("Flatten", [node.input[0]], [f"{p}.flat"], name=f"{p}.flatten", axis=1),
        helper.make_node("Gemm", [f"{p}.flat", weight, bias], [f"{p}.gemm"], name=f"{p}.gemm"),
        helper.make_node("Reshape", [f"{p}.gemm", shape], [node.output[0]], name=f"{p}.reshape"),
    ]


def _as_phases(g: _Graph, node: onnx.NodeProto, w: np.ndarray, a: dict) -> list | None:
    """ConvTranspose k4 s2 p1 as four 2x2 Convs, one per output phase (a, b), then DepthToSpace.

    Output row 2i + a reads input rows i - 1 + a + r (r = 0, 1) through kernel row a + 1 - 2(a - 1 + r),
    i.e. rows 3 - 2r of the kernel for a = 0 and 2 - 2r for a = 1; the same for columns.
    """
    if a["kernel_shape"] != [4, 4] or a["strides"] != [2, 2] or a["pads"] != [1, 1, 1, 1]:
        return None
    cout = w.shape[1]
    b = _bias(g, node, cout)
    if cout < PHASE_MIN_CHANNELS or b is None:
        return None
    p = node.name
    bias = g.add_const(f"{p}.phase_bias", b.astype(w.dtype))
    nodes, phases = [], []
    for pa in range(2):
        for pb in range(2):
            rows = [3 - 2 * r if pa == 0 else 2 - 2 * r for r in range(2)]
            cols = [3 - 2 * c if pb == 0 else 2 - 2 * c for c in range(2)]
            k = w[:, :, rows][:, :, :, cols].transpose(1, 0, 2, 3)  # [cout, cin, 2, 2]
            weight = g.add_const(f"{p}.phase{pa}{pb}_weight", k)
            out = f"{p}.phase{pa}{pb}"
            # pads [top, left, bottom, right]: phase 0 looks one row up, phase 1 one row down.
            pads = [1 - pa, 1 - pb, pa, pb]
            nodes.append(
                helper.make_node(
                    "Conv", [node.input[0], weight, bias], [out], name=out, kernel_shape=[2, 2], pads=pads
                )
            )
            phases.append(out)
    # Concat puts phase (a, b) in channel block 2a + b: DepthToSpace's DCR order.
    nodes.append(helper.make_node("Concat", phases, [f"{p}.phases"], name=f"{p}.concat", axis=1))
    nodes.append(
        helper.make_node(
            "DepthToSpace", [f"{p}.phases"], [node.output[0]], name=f"{p}.d2s", blocksize=2, mode="DCR"
        )
    )
    return nodes


def rewrite_convtranspose(model: onnx.ModelProto) -> int:
    """Replace the ConvTranspose patterns above with faster equivalents; returns how many."""
    g = _Graph(model)
    new_nodes: list[onnx.NodeProto] = []
    count = 0
    for node in _detached_nodes(model):
        w = g.const(node.input[1]) if node.op_type == "ConvTranspose" else None
        a = _plain_convtranspose(node, w)
        replacement = None
        if a is not None:
            replacement = _projection_as_gemm(g, node, w, a) or _as_phases(g, node, w, a)
        if replacement:
            new_nodes.extend(replacement)
            count += 1
        else:
            new_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    g.drop_unused_consts()
    return count


def optimize_for_inference(model: onnx.ModelProto) -> dict[str, int]:
    """All of the above, in place. Returns counts for the export report."""
    strip_debug_info(model)
    folded, lowered = fold_batchnorm(model)
    rewritten = rewrite_convtranspose(model)
    del model.graph.value_info[:]  # stale after the rewrites; ONNX Runtime infers shapes itself
    return {"bn_folded": folded, "bn_lowered": lowered, "convtranspose_rewritten": rewritten}
