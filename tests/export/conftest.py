"""Small DCGANs with non-trivial weights, exported once per session."""

from __future__ import annotations

import pytest
from export_helpers import METADATA, make_generator

from ganlib.export import export_onnx


@pytest.fixture(scope="session", params=[10, 0], ids=["conditional", "unconditional"])
def exported(request, tmp_path_factory):
    """(generator, ExportInfo) for a conditional and an unconditional DCGAN."""
    g = make_generator(request.param, seed=request.param)
    out = tmp_path_factory.mktemp(f"export-{request.param}")
    return g, export_onnx(g, out / "generator.onnx", metadata=METADATA)
