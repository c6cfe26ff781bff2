"""Turning ganlib's files and numbers into Dagster metadata the UI shows well."""

from __future__ import annotations

import base64
from pathlib import Path

import dagster as dg


def image(path: str | Path, alt: str = "image") -> dg.MetadataValue:
    """Embed a PNG in the asset's metadata (markdown data URI), so the UI shows the picture itself."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def table(rows: list[dict], columns: list[str] | None = None) -> dg.MetadataValue:
    columns = columns or (list(rows[0]) if rows else [])
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |\n" for r in rows)
    return dg.MetadataValue.md(head + body)


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
