"""Export a ganlib generator to one self-contained ONNX file, and prove ONNX Runtime agrees with PyTorch.

The exported graph: inputs ``z`` float32 [N, z_dim] and, for class-conditional generators, ``class_id``
int64 [N]; output ``image`` float32 [N, C, H, W] in [-1, 1]. N is dynamic. The generator runs in eval
mode (BatchNorm uses its running statistics, so one image does not depend on the rest of the batch).

Exporter choice: the torch.export-based ("dynamo") exporter, the default since torch 2.9. Both exporters
produce a correct single-file graph with a dynamic batch axis for our generators (parity ~1e-10), but the
TorchScript one is deprecated and slated for removal. It costs a few seconds more per export.
``exporter="torchscript"`` stays available as an escape hatch for a model the dynamo exporter cannot trace.

After the exporter (constant folding included), ``ganlib.onnx_graph`` rewrites the graph for inference:
BatchNorm folded into the convolutions, ConvTranspose in the forms ONNX Runtime runs fastest, and no debug
info. These are portable ONNX rewrites; ONNX Runtime's own optimizations (level ALL: fused and blocked-layout
kernels) are specific to the machine and provider, so they are applied when a session opens the file, not
saved into it.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import torch
from torch import nn

from .models.base import Generator
from .onnx_graph import optimize_for_inference, strip_debug_info

# Metadata every exported model must carry (written as ONNX metadata_props, read by services and humans).
REQUIRED_METADATA = ("model_name", "model_version", "config_hash", "data_hash", "fid", "fid_backbone")
# Facts export_onnx derives from the generator itself; callers may not contradict them.
DERIVED_METADATA = ("z_dim", "num_classes", "resolution", "channels", "model_spec", "exporter")
MAX_BATCH = 65536


class ParityError(RuntimeError):
    """ONNX Runtime's output differs from PyTorch's beyond the tolerance: the export must not ship."""


@dataclass(frozen=True)
class ExportInfo:
    path: Path
    opset: int
    exporter: str
    inputs: list[dict[str, Any]]  # [{"name", "dtype", "shape"}], batch axis "N": the manifest's format
    outputs: list[dict[str, Any]]
    metadata: dict[str, str]
    size: int
    rewrites: dict[str, int] = field(default_factory=dict)  # see ganlib.onnx_graph.optimize_for_inference

    def manifest_fields(self) -> dict[str, Any]:
        """The part of a store manifest that describes the graph (see ``ganlib.store``)."""
        return {"opset": self.opset, "inputs": self.inputs, "outputs": self.outputs}


@dataclass(frozen=True)
class ParityResult:
    max_abs_err: float
    ok: bool
    atol: float
    batch_sizes: tuple[int, ...] = field(default=())


class _ExportWrapper(nn.Module):
    """Fixes the graph's signature: ``(z)`` or ``(z, class_id)``, named so the ONNX inputs are too."""

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, z: torch.Tensor, class_id: torch.Tensor | None = None) -> torch.Tensor:
        return self.generator(z, class_id)


def _frozen_copy(generator: Generator) -> Generator:
    """A float32 CPU eval-mode copy, so exporting never changes the caller's model (device, mode)."""
    g = copy.deepcopy(generator).to("cpu", torch.float32).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    return g


def _example_inputs(g: Generator, batch: int = 2) -> tuple[torch.Tensor, ...]:
    # Batch 2, not 1: the exporter may specialise a size-1 axis to a constant.
    z = torch.randn(batch, g.z_dim)
    if g.num_classes:
        return z, torch.arange(batch, dtype=torch.long) % g.num_classes
    return (z,)


def _io_spec(model: onnx.ModelProto) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def spec(values) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
            shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
            out.append({"name": v.name, "dtype": dtype, "shape": ["N", *shape[1:]]})
        return out

    return spec(model.graph.input), spec(model.graph.output)


def export_onnx(
    generator: Generator,
    path: str | Path,
    *,
    opset: int = 18,
    metadata: dict[str, str],
    exporter: Literal["dynamo", "torchscript"] = "dynamo",
    optimize: bool = True,
) -> ExportInfo:
    """Write ``generator`` to ``path`` as one ONNX file (weights inside) and check it.

    ``metadata`` needs the keys in ``REQUIRED_METADATA`` (values are stored as strings); extra keys are
    kept. ``z_dim``, ``num_classes``, ``resolution``, ``channels``, ``model_spec`` and ``exporter`` are
    added from the generator. ``optimize`` applies ``ganlib.onnx_graph.optimize_for_inference`` (BatchNorm
    folded, ConvTranspose rewritten for ONNX Runtime); False keeps the exporter's graph (for comparison).
    Debug info (stack traces, source paths) is stripped either way: the same weights and metadata give
    byte-identical files.
    """
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise ValueError(f"export metadata lacks {missing}; required: {list(REQUIRED_METADATA)}")
    g = _frozen_copy(generator)
    derived = {
        "z_dim": str(g.z_dim),
        "num_classes": str(g.num_classes),
        "resolution": str(g.spec.resolution),
        "channels": str(g.spec.channels),
        "model_spec": json.dumps(g.spec.to_dict(), sort_keys=True),
        "exporter": exporter,
    }
    clash = [k for k in DERIVED_METADATA if k in metadata and str(metadata[k]) != derived[k]]
    if clash:
        raise ValueError(f"export metadata {clash} contradicts the generator: {[derived[k] for k in clash]}")
    props = {**{k: str(v) for k, v in metadata.items()}, **derived}

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _ExportWrapper(g).eval()
    args = _example_inputs(g)
    names = ["z", "class_id"][: len(args)]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter (deprecations, axis-renaming notes)
        common = dict(opset_version=opset, input_names=names, output_names=["image"])
        if exporter == "dynamo":
            batch = torch.export.Dim("N", min=1, max=MAX_BATCH)
            torch.onnx.export(
                wrapper,
                args,
                str(path),
                dynamo=True,
                dynamic_shapes={n: {0: batch} for n in names},
                external_data=False,  # one file: no side .data file to lose on the way to the store
                optimize=True,
                verbose=False,
                **common,
            )
        elif exporter == "torchscript":
            dynamic_axes = {n: {0: "N"} for n in [*names, "image"]}
            torch.onnx.export(wrapper, args, str(path), dynamo=False, dynamic_axes=dynamic_axes, **common)
        else:
            raise ValueError(f"unknown exporter {exporter!r}: use 'dynamo' or 'torchscript'")

    model = onnx.load(str(path))
    if optimize:
        rewrites = optimize_for_inference(model)
    else:
        strip_debug_info(model)  # reproducible bytes either way
        rewrites = {}
    del model.metadata_props[:]
    for k, v in sorted(props.items()):
        model.metadata_props.add(key=k, value=v)
    onnx.save_model(model, str(path), save_as_external_data=False)
    onnx.checker.check_model(str(path), full_check=True)
    model_opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    inputs, outputs = _io_spec(model)
    return ExportInfo(
        path=path,
        opset=int(model_opset),
        exporter=exporter,
        inputs=inputs,
        outputs=outputs,
        metadata=props,
        size=path.stat().st_size,
        rewrites=rewrites,
    )


def _latents(z_dim: int, num_classes: int, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {"z": rng.standard_normal((n, z_dim), dtype=np.float32)}
    if num_classes:
        feeds["class_id"] = (np.arange(n) % num_classes).astype(np.int64)
    return feeds


def check_parity(
    generator: Generator,
    onnx_path: str | Path,
    *,
    n: int = 16,
    seed: int = 0,
    atol: float = 1e-4,
    raise_on_failure: bool = True,
) -> ParityResult:
    """Compare ONNX Runtime (CPU) with PyTorch (eval, float32, CPU) on fixed latents at batch ``n`` and
    batch 1, which also proves the batch axis is dynamic. Raises ``ParityError`` beyond ``atol`` (or on a
    wrong shape/NaN) unless ``raise_on_failure`` is False."""
    import onnxruntime as ort

    g = _frozen_copy(generator)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    expected_inputs = {"z", "class_id"} if g.num_classes else {"z"}
    got_inputs = {i.name for i in session.get_inputs()}
    if got_inputs != expected_inputs:
        raise ParityError(f"{onnx_path}: inputs {sorted(got_inputs)}, expected {sorted(expected_inputs)}")

    batch_sizes = tuple(dict.fromkeys((n, 1)))
    errs = []
    for i, b in enumerate(batch_sizes):
        feeds = _latents(g.z_dim, g.num_classes, b, seed + i)
        with torch.no_grad():
            y = torch.from_numpy(feeds["class_id"]) if "class_id" in feeds else None
            ref = g(torch.from_numpy(feeds["z"]), y).numpy()
        (out,) = session.run(["image"], feeds)
        if out.shape != ref.shape:
            raise ParityError(
                f"{onnx_path}: ONNX output shape {out.shape} != PyTorch {ref.shape} at batch {b}"
            )
        errs.append(float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))))
    worst = max(errs) if all(np.isfinite(errs)) else float("nan")
    ok = bool(np.isfinite(worst) and worst <= atol)
    result = ParityResult(max_abs_err=worst, ok=ok, atol=atol, batch_sizes=batch_sizes)
    if not ok and raise_on_failure:
        raise ParityError(
            f"ONNX Runtime vs PyTorch max abs error {worst:.3g} > atol {atol:g} "
            f"(batch sizes {batch_sizes}) for {onnx_path}"
        )
    return result
