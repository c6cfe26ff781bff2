"""The data parameters as observable sources: Dagster sees a params.yaml edit as new upstream data.

``ingest_params`` and ``preprocess_params`` report a data version (the hash of their section of
params.yaml) each time they are observed: by every ``retrain`` run, every minute while the daemon runs
(``make ui``), or from the UI's "Observe sources". When a version changes, the UI marks the data assets
downstream stale and "Materialize stale" re-runs exactly them, as `dvc status` would say.
"""

from __future__ import annotations

import hashlib
import json

import dagster as dg

from pipelines.resources import Workspace


def _section_version(workspace: Workspace, section: str) -> dg.DataVersion:
    values = workspace.params().get(section, {})
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return dg.DataVersion(digest[:16])


@dg.observable_source_asset(
    group_name="data",
    auto_observe_interval_minutes=1,
    description="params.yaml `ingest`: which source raw_images pulls and how it validates it.",
)
def ingest_params(workspace: Workspace) -> dg.DataVersion:
    return _section_version(workspace, "ingest")


@dg.observable_source_asset(
    group_name="data",
    auto_observe_interval_minutes=1,
    description="params.yaml `preprocess`: resolution, channels, split (the DVC stage's params).",
)
def preprocess_params(workspace: Workspace) -> dg.DataVersion:
    return _section_version(workspace, "preprocess")
