"""Turning ganlib's files and numbers into Dagster metadata the UI shows well.

Images: Dagster renders markdown metadata inline on an asset's page only when it is short (under 1,000
characters); longer markdown hides behind "[Show Markdown]". A PNG embedded as a data URI is always long, so
where an artifact server is configured (``GAN_ARTIFACT_BASE_URL``, e.g. the one ``make ui`` starts on
loopback over ``outputs/``) an image is a short markdown link to it and shows without a click; elsewhere it
is embedded (one click).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from urllib.parse import quote

import dagster as dg

ARTIFACT_BASE_URL = "GAN_ARTIFACT_BASE_URL"  # serves the workspace's outputs/ folder


def image(path: str | Path, alt: str = "image", outputs_dir: str | Path | None = None) -> dg.MetadataValue:
    path = Path(path).resolve()
    base = os.environ.get(ARTIFACT_BASE_URL, "").rstrip("/")
    if base and outputs_dir is not None and path.is_relative_to(Path(outputs_dir).resolve()):
        rel = path.relative_to(Path(outputs_dir).resolve()).as_posix()
        # The file's mtime busts the browser's cache when a re-run rewrites the same path.
        return dg.MetadataValue.md(f"![{alt}]({base}/{quote(rel)}?v={int(path.stat().st_mtime)})")
    data = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def table(rows: list[dict], columns: list[str] | None = None) -> dg.MetadataValue:
    """A typed table (the UI sorts and shows it as a table, not as markdown text)."""
    columns = columns or (list(rows[0]) if rows else [])
    kinds = {c: _kind([r.get(c) for r in rows]) for c in columns}
    schema = dg.TableSchema(columns=[dg.TableColumn(c, kinds[c]) for c in columns])
    records = [dg.TableRecord({c: _cell(r.get(c), kinds[c]) for c in columns}) for r in rows]
    return dg.MetadataValue.table(records, schema=schema)


def _kind(values: list[object]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def _cell(value: object, kind: str) -> object:
    if value is None:
        return None
    if kind == "float":
        return float(value)  # type: ignore[arg-type]
    if kind in ("int", "bool"):
        return value
    return str(value)
