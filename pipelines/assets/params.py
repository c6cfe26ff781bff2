"""The data parameters as observable sources: Dagster sees a params.yaml edit as new upstream data.

``ingest_params`` (with the source folder's listing) and ``preprocess_params`` report a data version (the hash of their section of
params.yaml) each time they are observed: by every ``retrain`` run, every minute while the daemon runs
(``make ui``), or from the UI's "Observe sources". When a version changes, the UI marks the data assets
downstream stale and "Materialize stale" re-runs exactly them, as `dvc status` would say.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg

from pipelines.resources import Workspace


def _section_version(workspace: Workspace, section: str, extra: str = "") -> dg.DataVersion:
    values = workspace.params().get(section, {})
    blob = json.dumps(values, sort_keys=True, default=str) + extra
    return dg.DataVersion(hashlib.sha256(blob.encode()).hexdigest()[:16])


@dg.observable_source_asset(
    group_name="data",
    auto_observe_interval_minutes=1,
    description="params.yaml `ingest` (which source raw_images pulls, how it validates it) and, for an image "
    "folder, the folder's listing: a file added, removed or rewritten there is new upstream data.",
)
def ingest_params(workspace: Workspace) -> dg.DataVersion:
    from ganlib.data.listing import listing_fingerprint

    source = workspace.resolve_source(str(workspace.params().get("ingest", {}).get("source", "digits")))
    folder = Path(source)
    listing = listing_fingerprint(folder) if not source.startswith("s3://") and folder.is_dir() else ""
    return _section_version(workspace, "ingest", listing)


@dg.observable_source_asset(
    group_name="data",
    auto_observe_interval_minutes=1,
    description="params.yaml `preprocess`: resolution, channels, split (the DVC stage's params).",
)
def preprocess_params(workspace: Workspace) -> dg.DataVersion:
    return _section_version(workspace, "preprocess")
