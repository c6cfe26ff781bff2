"""The values that cross asset boundaries: small frozen records, stored as JSON (never pickle).

Each record names the artifact it stands for by content (sha256 of the file, DVC hash of the data) and the
identity it was derived from, so any stage, however it was launched, can check that it judges or ships the
right thing. ``identity()`` is the sha256 of a record's canonical JSON: the gates record it in Dagster's
event log, and the export compares the stored value against it, so an edited value is refused.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def identity(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


class RawImages(Record):
    name: str
    raw_dir: str
    dvc_hash: str  # DVC's md5 of data/raw/<name>
    count: int


class ProcessedDataset(Record):
    path: str
    data_hash: str  # DVC's md5 of data/processed: the data version every later record names
    counts: dict[str, int]
    resolution: int
    channels: int
    class_names: list[str]


class FidReference(Record):
    stats_path: str
    stats_sha256: str  # of the .npz holding mean, covariance and the raw features
    backbone: str  # e.g. "domain:1a2b3c4d"
    backbone_weights_sha256: str
    n: int
    data_hash: str
    dataset_path: str  # the processed dataset (its train split gives the real floor)


class TrainedGenerator(Record):
    checkpoint: str
    checkpoint_sha256: str
    run_dir: str
    config: dict[str, Any]  # the whole GAN config that trained these weights
    training_digest: str  # model + loss + train sections (GANConfig.training_digest)
    data_hash: str
    steps: int


class GateDecision(Record):
    gate: str  # "fid_gate" | "prune_gate"
    passed: bool
    reasons: list[str]
    judged_sha256: str  # the checkpoint this decision is about
    settings_digest: str  # the config sections the decision was taken under
    fid: float
    limit: float  # the absolute bound (fid_gate) or the allowed FID after pruning (prune_gate)
    champion_fid: float | None = None
    champion_version: str | None = None


class Evaluation(Record):
    checkpoint_sha256: str  # exactly the weights that were scored
    training_digest: str
    evaluation_digest: str  # GANConfig.evaluation_digest of the config in force
    reference_sha256: str
    score: dict[str, Any]  # ganlib ScoreReport.to_dict() (+ floor)
    champion_score: dict[str, Any] | None
    gate: GateDecision
    report_path: str


class PrunedGenerator(Record):
    checkpoint: str
    checkpoint_sha256: str
    parent_checkpoint_sha256: str  # the trained checkpoint it was derived from
    evaluation_identity: str  # Evaluation.identity() of the evaluation it was judged with
    dissection_digest: str
    training_config: dict[str, Any]  # the config that trained the parent checkpoint
    units_removed: int
    removed: dict[str, list[int]]
    params_before: int
    params_after: int
    fid_before: float
    fid_after: float
    fid_label: str
    champion_score: dict[str, Any] | None
    gate: GateDecision
    report_path: str


class PublishedGenerator(Record):
    uri: str
    manifest_uri: str
    model: str
    version: str
    sha256: str  # of generator.onnx
    pruned_checkpoint_sha256: str
    evaluation_identity: str
    pruned_identity: str


ASSET_TYPES: dict[str, type[Record]] = {
    cls.__name__: cls
    for cls in (
        RawImages,
        ProcessedDataset,
        FidReference,
        TrainedGenerator,
        Evaluation,
        PrunedGenerator,
        PublishedGenerator,
    )
}
