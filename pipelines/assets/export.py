"""The export asset: ONNX export with a parity check, published to the object store under a new version.

Before it publishes it verifies the chain (``verify_chain``): however it was launched (the whole job, or
this asset alone, which runs no upstream checks), it ships only a checkpoint whose gates passed for exactly
that checkpoint under the config in force.
"""

import hashlib
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from ganlib.config import GANConfig
from pipelines.code_versions import EXPORT, code_version
from pipelines.provenance import refusals_tagged, require_equal, require_file, require_passed_check
from pipelines.resources import REPO_ROOT, GanConfigResource, ObjectStoreResource
from pipelines.types import Evaluation, PrunedGenerator, PublishedGenerator


def _git_commit() -> str:
    """The code's commit: from git, or GAN_GIT_COMMIT where the image has no .git (set at docker build)."""
    if os.environ.get("GAN_GIT_COMMIT"):
        return os.environ["GAN_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def verify_chain(
    instance: dg.DagsterInstance, evaluation: Evaluation, pruned: PrunedGenerator, current: GANConfig
) -> None:
    """Publish only what was measured: raise ``ChainBroken`` (naming the identity that differs and the asset to
    re-materialize) unless both gates passed, in this Dagster instance, for exactly these stored values, the
    evaluation judged the checkpoint the pruned generator came from, and both were judged under the config in
    force."""
    stage = "onnx_generator"
    require_passed_check(
        stage, instance, dg.AssetCheckKey(dg.AssetKey("generator_evaluation"), "fid_gate"), evaluation
    )
    require_passed_check(
        stage, instance, dg.AssetCheckKey(dg.AssetKey("pruned_generator"), "prune_gate"), pruned
    )
    require_equal(
        stage,
        "pruned_generator was derived from another checkpoint than generator_evaluation judged",
        pruned.parent_checkpoint_sha256,
        evaluation.checkpoint_sha256,
        "Re-materialize pruned_generator from the evaluated checkpoint (or generator_evaluation, then it).",
    )
    require_equal(
        stage,
        "pruned_generator was judged with another generator_evaluation than the stored one",
        pruned.evaluation_identity,
        evaluation.identity(),
        "Re-materialize pruned_generator.",
    )
    require_equal(
        stage,
        "the trained weights come from other model/loss/train settings than the config in force",
        GANConfig.model_validate(pruned.training_config).training_digest(),
        current.training_digest(),
        "Re-materialize trained_generator, generator_evaluation and pruned_generator (or run the retrain job).",
    )
    require_equal(
        stage,
        "generator_evaluation was judged under other eval settings than the config in force",
        evaluation.evaluation_digest,
        current.evaluation_digest(),
        "Re-materialize generator_evaluation (and pruned_generator).",
    )
    require_equal(
        stage,
        "pruned_generator was made under other dissect/eval settings than the config in force",
        pruned.dissection_digest,
        current.dissection_digest(),
        "Re-materialize pruned_generator.",
    )
    require_file(stage, pruned.checkpoint, pruned.checkpoint_sha256, "pruned_generator")


@dg.asset(
    group_name="delivery",
    code_version=code_version(*EXPORT),
    kinds={"onnx", "s3"},
    owners=["team:ml-platform"],
    # Transient store/network failures retry the step; deliberate refusals say allow_retries=False.
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    description="Verifies the chain (both gates passed for exactly these artifacts under the config in force), "
    "exports the pruned EMA generator to ONNX, checks ONNX Runtime parity against PyTorch, then publishes "
    "generator.onnx + manifest.json under a new immutable version and moves `latest`.",
)
def onnx_generator(
    context: dg.AssetExecutionContext,
    pruned_generator: PrunedGenerator,
    generator_evaluation: Evaluation,
    gan_config: GanConfigResource,
    object_store: ObjectStoreResource,
) -> dg.Output[PublishedGenerator]:
    from ganlib.export import ParityError, check_parity, export_onnx
    from ganlib.models import load_generator
    from ganlib.store import StoreError, config_hash, is_permanent, publish

    current = gan_config.load()
    with refusals_tagged(context):
        verify_chain(context.instance, generator_evaluation, pruned_generator, current)
    # The manifest's config is the one that trained these weights, with the stages' sections in force.
    cfg = GANConfig.model_validate(pruned_generator.training_config).judged_with(current)
    config = cfg.model_dump(mode="json")
    generator = load_generator(pruned_generator.checkpoint)
    score = generator_evaluation.score
    fid_after = pruned_generator.fid_after
    created = datetime.now(UTC)
    # The version names what is published (these judged artifacts, exported under these settings), not when:
    # a retried or re-run export of the same artifacts publishes the same version, which the store's
    # idempotent publish completes instead of adding a second copy.
    publish_id = hashlib.sha256(
        f"{pruned_generator.identity()}|{generator_evaluation.identity()}|{cfg.export_digest()}".encode()
    ).hexdigest()
    version = f"v-{publish_id[:16]}"
    out_dir = Path(pruned_generator.checkpoint).parent / "onnx"
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "generator.onnx"
    info = export_onnx(
        generator,
        onnx_path,
        opset=cfg.export.opset,
        metadata={
            "model_name": cfg.export.model_name,
            "model_version": version,
            "config_hash": config_hash(config),
            "data_hash": score["protocol"].get("data_hash", ""),
            "fid": f"{fid_after:.4f}",
            "fid_backbone": score["label"],
        },
    )
    try:
        parity = check_parity(generator, onnx_path, atol=cfg.export.parity_atol)
    except ParityError as exc:
        raise dg.Failure(f"ONNX parity check failed, nothing uploaded: {exc}", allow_retries=False) from None
    identities = {
        "training_digest": cfg.training_digest(),
        "checkpoint_sha256": generator_evaluation.checkpoint_sha256,
        "pruned_checkpoint_sha256": pruned_generator.checkpoint_sha256,
        "evaluation_digest": generator_evaluation.evaluation_digest,
        "dissection_digest": pruned_generator.dissection_digest,
        "reference_sha256": generator_evaluation.reference_sha256,
        "backbone_weights_sha256": score["protocol"].get("weights_sha256"),
        "evaluation_identity": generator_evaluation.identity(),
        "pruned_identity": pruned_generator.identity(),
    }
    try:
        published = publish(
            object_store.open(),
            cfg.export.model_name,
            version,
            onnx_path,
            {
                **info.manifest_fields(),
                "fid": {"value": fid_after, "backbone": score["backbone"]},
                "data_hash": score["protocol"].get("data_hash", ""),
                "config": config,
                "git_commit": _git_commit(),
                "created_at": created.isoformat(),
                "extra": {
                    "fid_label": score["label"],
                    "fid_ci95_before_pruning": score["fid_ci"],
                    "floor": score.get("floor"),
                    "fid_measured_on": "pruned generator",
                    "parity_max_abs_err": parity.max_abs_err,
                    "exporter": info.exporter,
                    "identities": identities,
                },
            },
        )
    except StoreError as exc:
        # Refused credentials stay refused: fail at once instead of retrying the step.
        raise dg.Failure(
            f"publishing to the object store failed: {exc}", allow_retries=not is_permanent(exc)
        ) from None
    (out_dir / "published.json").write_text(json.dumps({"uri": published.uri, "version": version}, indent=2))
    return dg.Output(
        PublishedGenerator(
            uri=published.uri,
            manifest_uri=published.manifest_uri,
            model=cfg.export.model_name,
            version=version,
            sha256=published.sha256,
            pruned_checkpoint_sha256=pruned_generator.checkpoint_sha256,
            evaluation_identity=generator_evaluation.identity(),
            pruned_identity=pruned_generator.identity(),
        ),
        metadata={
            "uri": dg.MetadataValue.url(published.uri)
            if "://" in published.uri
            else dg.MetadataValue.path(published.uri),
            "version": version,
            "sha256": published.sha256,
            "opset": info.opset,
            "size_bytes": onnx_path.stat().st_size,
            "parity_max_abs_err": parity.max_abs_err,
            score["label"]: dg.MetadataValue.float(fid_after),
            "identities": dg.MetadataValue.json(identities),
        },
    )
