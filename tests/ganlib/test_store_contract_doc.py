"""The README's object-store contract matches what ganlib.store writes (so the document cannot drift)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ganlib.store import LocalStore, latest_key, manifest_key, onnx_key, publish, read_latest

README = Path(__file__).resolve().parents[2] / "README.md"


def _contract() -> str:
    text = README.read_text()
    start = text.index("## The object-store contract")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_documented_keys_and_fields_are_the_written_ones(tmp_path):
    onnx = tmp_path / "generator.onnx"
    onnx.write_bytes(b"stand-in bytes: the store does not parse them")
    fields = {"opset": 18, "inputs": [], "outputs": [], "config": {"a": 1}, "git_commit": None}
    store = LocalStore(tmp_path / "store")
    publish(store, "digits", "v1", onnx, fields)
    doc = _contract()

    for key in (onnx_key("digits", "v1"), manifest_key("digits", "v1"), latest_key("digits")):
        pattern = key.replace("digits", "<model>").replace("v1", "<version>")
        assert f"<prefix>/{pattern}" in doc, pattern
    manifest = json.loads((tmp_path / "store" / manifest_key("digits", "v1")).read_text())
    documented = set(re.findall(r"`(\w+)`", doc))
    assert set(manifest) <= documented, set(manifest) - documented
    assert set(read_latest(store, "digits")) <= documented

    # The documented checksum and config hash, recomputed here from their descriptions.
    import hashlib

    assert manifest["sha256"] == hashlib.sha256(onnx.read_bytes()).hexdigest()
    assert manifest["size"] == onnx.stat().st_size
    canonical = json.dumps({"a": 1}, sort_keys=True, separators=(",", ":"))
    assert manifest["config_hash"] == hashlib.sha256(canonical.encode()).hexdigest()
