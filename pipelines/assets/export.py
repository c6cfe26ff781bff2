"""The export asset: ONNX export with a parity check, published to the object store under a new version.

It re-reads both gate decisions before publishing, so a single-asset materialization (which runs no
blocking checks of upstream assets) can never ship an ungated model.
"""

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipelines.resources import REPO_ROOT, GanConfigResource, ObjectStoreResource


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


def refuse_ungated(generator_evaluation: dict, pruned_generator: dict) -> None:
    for name, decision in (
        ("fid_gate", generator_evaluation.get("gate")),
        ("prune_gate", pruned_generator.get("gate")),
    ):
        if not decision or not decision.get("passed"):
            reasons = "; ".join((decision or {}).get("reasons", ["no gate decision recorded"]))
            raise dg.Failure(
                f"refusing to export: {name} did not pass ({reasons}). Nothing was uploaded.",
                allow_retries=False,
            )


@dg.asset(
    group_name="delivery",
    kinds={"onnx", "s3"},
    owners=["team:ml-platform"],
    # Transient store/network failures retry the step; deliberate refusals say allow_retries=False.
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL),
    description="Exports the pruned EMA generator to ONNX, checks ONNX Runtime parity against PyTorch, then "
    "publishes generator.onnx + manifest.json under a new immutable version and moves `latest`.",
)
def onnx_generator(
    context: dg.AssetExecutionContext,
    pruned_generator: dict,
    generator_evaluation: dict,
    gan_config: GanConfigResource,
    object_store: ObjectStoreResource,
) -> dg.Output[dict]:
    from ganlib.export import ParityError, check_parity, export_onnx
    from ganlib.models import load_generator
    from ganlib.store import StoreError, is_permanent, publish

    refuse_ungated(generator_evaluation, pruned_generator)
    cfg = gan_config.load()
    generator = load_generator(pruned_generator["checkpoint"])
    score = generator_evaluation["score"]
    fid_after = pruned_generator["fid_after"]
    created = datetime.now(UTC)
    version = f"v{created:%Y%m%d-%H%M%S}-{cfg.digest()[:8]}"
    out_dir = Path(pruned_generator["checkpoint"]).parent / "onnx"
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "generator.onnx"
    info = export_onnx(
        generator,
        onnx_path,
        opset=cfg.export.opset,
        metadata={
            "model_name": cfg.export.model_name,
            "model_version": version,
            "config_hash": cfg.digest(),
            "data_hash": score["protocol"].get("data_hash", ""),
            "fid": f"{fid_after:.4f}",
            "fid_backbone": score["label"],
        },
    )
    try:
        parity = check_parity(generator, onnx_path, atol=cfg.export.parity_atol)
    except ParityError as exc:
        raise dg.Failure(f"ONNX parity check failed, nothing uploaded: {exc}", allow_retries=False) from None
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
                "config": cfg.model_dump(mode="json"),
                "config_hash": cfg.digest(),
                "git_commit": _git_commit(),
                "created_at": created.isoformat(),
                "extra": {
                    "fid_label": score["label"],
                    "fid_ci95_before_pruning": score["fid_ci"],
                    "fid_measured_on": "pruned generator",
                    "parity_max_abs_err": parity.max_abs_err,
                    "exporter": info.exporter,
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
        {
            "uri": published.uri,
            "version": version,
            "sha256": published.sha256,
            "model": cfg.export.model_name,
        },
        metadata={
            "uri": published.uri,
            "version": version,
            "sha256": published.sha256,
            "opset": info.opset,
            "size_bytes": onnx_path.stat().st_size,
            "parity_max_abs_err": parity.max_abs_err,
            score["label"]: fid_after,
        },
    )
