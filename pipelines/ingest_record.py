"""Skipping an ingest that would change nothing: a record of the last ingest of a folder source.

Re-validating 100k unchanged files and re-packing their shards costs a minute of CPU; comparing two listings
(names, sizes, mtimes: no file is read; the raw side is a few shards) costs well under a second. The record says what was ingested, from
which listing, into which raw listing and DVC hash; any difference (source, ingest params, a file added,
removed or rewritten on either side, the .dvc file) ingests again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ganlib.data.listing import listing_fingerprint
from ganlib.data.raw_shards import LAYOUT
from ganlib.data.sources import IngestReport

# Only local folders: built-in and torchvision sources are cheap to re-ingest, an s3:// listing is remote.
_NOT_FOLDERS = ("digits", "torchvision:", "s3://")


def _key(source: str, params: dict[str, Any]) -> dict[str, Any] | None:
    if source.startswith(_NOT_FOLDERS) or not Path(source).is_dir():
        return None
    settings = {k: v for k, v in params.items() if k != "name"}
    # The raw layout is part of the key: raw data written by an older layout is ingested again.
    return {
        "source": source,
        "params": settings,
        "layout": LAYOUT,
        "source_listing": listing_fingerprint(Path(source)),
    }


def _dvc_hash(dvc_file: Path) -> str | None:
    if not dvc_file.is_file():
        return None
    return (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", [{}])[0].get("md5")


def unchanged_ingest(
    record_file: Path, source: str, params: dict[str, Any], raw_dir: Path, dvc_file: Path
) -> dict[str, Any] | None:
    """The last ingest's record when re-ingesting would change nothing, else None."""
    if not record_file.is_file() or not raw_dir.is_dir():
        return None
    record = json.loads(record_file.read_text())
    key = _key(source, params)
    if key is None or record.get("key") != key or _dvc_hash(dvc_file) != record.get("dvc_hash"):
        return None
    return record if listing_fingerprint(raw_dir) == record.get("raw_listing") else None


def record_ingest(
    record_file: Path, source: str, params: dict[str, Any], raw_dir: Path, dvc_hash: str, report: IngestReport
) -> dict[str, Any]:
    """Write the record of an ingest that just finished (after ``dvc add``); returns it."""
    record = {
        "key": _key(source, params),
        "raw_listing": listing_fingerprint(raw_dir),
        "dvc_hash": dvc_hash,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "classes": report.classes,
        "rejects": report.rejects[:50],
        "skipped": report.skipped[:50],
    }
    if record["key"] is not None:
        record_file.write_text(json.dumps(record, indent=1))
    return record
