"""Model assets: the FID reference, training, evaluation (with the gate decision) and pruning.

Each takes the config that made its input from that input's record (``TrainedGenerator.config``) and only
its own stage's section from the config in force, and checks that its inputs are the artifacts their
records name before it judges them (``pipelines/provenance.py``).
"""

import json
from pathlib import Path

import dagster as dg

from ganlib.config import ConfigError, GANConfig
from ganlib.data.versions import short_key
from ganlib.store import sha256_file
from pipelines import gate_decisions
from pipelines.code_versions import EVALUATION, PRUNING, REFERENCE, TRAINING, code_version
from pipelines.metadata import image, table
from pipelines.multinode import NodeLauncher, train_on_nodes
from pipelines.provenance import ChainBroken, refusals_tagged, require_equal, require_file
from pipelines.resources import ComputeResource, GanConfigResource, ObjectStoreResource, Workspace
from pipelines.types import Evaluation, FidReference, ProcessedDataset, PrunedGenerator, TrainedGenerator

OWNERS = ["team:ml-research"]


def _judging_config(trained: TrainedGenerator, gan_config: GanConfigResource) -> GANConfig:
    """The config that trained ``trained``, with the later stages' sections from the config in force."""
    return GANConfig.model_validate(trained.config).judged_with(gan_config.load())


def _champion(
    context: dg.AssetExecutionContext,
    object_store: ObjectStoreResource,
    cfg: GANConfig,
    workspace: Workspace,
    score_fn,
) -> dict | None:
    """The published ``latest`` of this model, pulled (sha256-verified) and re-scored now by ``score_fn``.
    None when nothing is published yet; a champion that cannot be scored here is reported, not compared."""
    from ganlib.serving import pull
    from ganlib.store import ObjectNotFound, StoreError

    try:
        pulled = pull(object_store.open(), cfg.export.model_name, cache_dir=workspace.outputs("champions"))
    except ObjectNotFound:
        return None
    except StoreError as exc:
        raise dg.Failure(f"cannot read the champion from the object store: {exc}") from None
    try:
        score = score_fn(pulled.path)
    except (ValueError, RuntimeError) as exc:
        context.log.warning(f"champion {pulled.version} could not be scored here: {exc}")
        return {"version": pulled.version, "unscorable": str(exc), "fid": None, "protocol": {}}
    return {**score, "version": pulled.version}


@dg.asset(
    group_name="evaluation",
    code_version=code_version(*REFERENCE),
    kinds={"pytorch", "numpy"},
    owners=OWNERS,
    pool="gpu",
    description="Feature statistics (mean, covariance) of the real val split under the configured FID "
    "backbone. The offline default backbone is a small network trained on the train split, cached per data "
    "version; recomputed only when the data or the backbone change.",
)
def fid_reference(
    context: dg.AssetExecutionContext,
    processed_dataset: ProcessedDataset,
    workspace: Workspace,
    gan_config: GanConfigResource,
    compute: ComputeResource,
) -> dg.Output[FidReference]:
    from ganlib.scoring import build_backbone, compute_reference

    cfg = gan_config.load()
    data_hash = processed_dataset.data_hash
    out_dir = workspace.outputs("fid_reference", short_key(data_hash))
    backbone = build_backbone(
        cfg.eval, processed_dataset.path, data_hash, workspace.outputs("backbones"), compute.torch_device()
    )
    ref = compute_reference(
        backbone, processed_dataset.path, out_dir / f"{backbone.name.replace(':', '-')}.npz"
    )
    stats_sha = sha256_file(ref.path)[0]
    return dg.Output(
        FidReference(
            stats_path=str(ref.path),
            stats_sha256=stats_sha,
            backbone=backbone.name,
            backbone_weights_sha256=backbone.weights_sha256,
            n=ref.n,
            data_hash=data_hash,
            dataset_path=processed_dataset.path,
        ),
        data_version=dg.DataVersion(stats_sha[:16]),
        metadata={
            "backbone": backbone.name,
            "weights_sha256": backbone.weights_sha256,
            "stats_sha256": stats_sha,
            "samples": ref.n,
            "feature_dim": ref.dim,
            "stats": dg.MetadataValue.path(str(ref.path)),
            "warnings": "; ".join(ref.warnings) or "none",
        },
    )


@dg.asset(
    group_name="training",
    code_version=code_version(*TRAINING),
    kinds={"pytorch"},
    owners=OWNERS,
    pool="gpu",
    # On Kubernetes (GAN_EXECUTOR=k8s) the training step's pod asks for one GPU.
    op_tags={
        "dagster-k8s/config": {
            "container_config": {
                "resources": {
                    "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                    "limits": {"memory": "32Gi", "nvidia.com/gpu": "1"},
                }
            },
            "pod_spec_config": {
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
            },
        }
    },
    description="Trains the GAN named by the config (`configs/NAME.yaml`) on the processed train split; keeps "
    "an EMA generator; checkpoints and resumes from `outputs/train/NAME-TRAININGDIGEST-DATA/`. Only the "
    "model, loss and train sections decide the folder: changing eval/dissect/export never retrains.",
)
def trained_generator(
    context: dg.AssetExecutionContext,
    processed_dataset: ProcessedDataset,
    workspace: Workspace,
    gan_config: GanConfigResource,
    compute: ComputeResource,
    node_launcher: NodeLauncher,
) -> dg.Output[TrainedGenerator]:
    from ganlib.data.shards import load_split
    from ganlib.distributed_launch import TorchrunFailed, train_with_torchrun
    from ganlib.models import load_generator
    from ganlib.samples import save_samples
    from ganlib.training import NonFiniteLossError, train
    from ganlib.viz import save_loss_plot

    cfg = gan_config.load()
    compute.check_layout()
    try:  # before any launch: a mismatch would otherwise surface inside the training processes
        cfg.model.check_resolution(
            processed_dataset.resolution, f"processed_dataset ({processed_dataset.path})"
        )
    except ConfigError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    if cfg.train.device == "auto" and compute.device != "auto":
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": compute.device})})
    data_hash = processed_dataset.data_hash
    training_digest = cfg.training_digest()
    run_dir = workspace.outputs("train", f"{cfg.name}-{training_digest}-{short_key(data_hash)}")
    split = load_split(processed_dataset.path, "train")

    def on_log(step: int, values: dict[str, float]) -> None:
        context.log.info(
            f"step {step}/{cfg.train.steps}: " + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        )
        # An observation per log interval: the asset's page plots the losses while training runs.
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                metadata={
                    "step": dg.MetadataValue.int(step),
                    "progress": dg.MetadataValue.float(step / cfg.train.steps),
                    **{k: dg.MetadataValue.float(float(v)) for k, v in values.items()},
                },
            )
        )

    try:
        # N machines x K processes: the node launcher starts them; the shared workspace joins them.
        if compute.nodes > 1:
            result = train_on_nodes(
                context, cfg, processed_dataset.path, run_dir, workspace.path, compute, node_launcher
            )
        elif compute.processes > 1:  # DDP: torchrun runs ganlib.train_cli in K processes
            result = train_with_torchrun(
                cfg, processed_dataset.path, run_dir, compute.processes, log=context.log.info
            )
        else:
            result = train(cfg, split, run_dir, resume=True, progress=True, on_log=on_log)
    except (NonFiniteLossError, TorchrunFailed) as exc:
        raise dg.Failure(str(exc), metadata={"run_dir": str(run_dir)}) from None
    if result.resumed_from >= cfg.train.steps:
        context.log.info(f"checkpoint in {run_dir} already has {result.resumed_from} steps: nothing to train")

    generator = load_generator(result.checkpoint)
    grid_path = save_samples(generator, run_dir / "samples.png", n=100, seed=0)
    plot_path = save_loss_plot(result.history, run_dir / "losses.png", title=f"{cfg.name}: losses")
    checkpoint_sha = sha256_file(result.checkpoint)[0]
    return dg.Output(
        TrainedGenerator(
            checkpoint=str(result.checkpoint),
            checkpoint_sha256=checkpoint_sha,
            run_dir=str(run_dir),
            config=cfg.model_dump(mode="json"),
            training_digest=training_digest,
            data_hash=data_hash,
            steps=cfg.train.steps,
        ),
        data_version=dg.DataVersion(checkpoint_sha[:16]),
        metadata={
            "config": cfg.name,
            "training_digest": training_digest,
            "checkpoint_sha256": checkpoint_sha,
            "family": cfg.model.family,
            "steps": cfg.train.steps,
            "resumed_from_step": result.resumed_from,
            "device": result.device,
            "images_per_sec": round(result.images_per_sec, 1),
            "params": sum(p.numel() for p in generator.parameters()),
            "checkpoint": dg.MetadataValue.path(str(result.checkpoint)),
            "samples": image(grid_path, "samples", workspace.outputs()),
            "losses": image(plot_path, "loss curves", workspace.outputs()),
        },
    )


def _require_reference_for(
    stage: str, trained: TrainedGenerator, reference: FidReference, cfg: GANConfig
) -> None:
    require_equal(
        stage,
        "fid_reference was computed on other data than the generator was trained on",
        reference.data_hash,
        trained.data_hash,
        "Re-materialize fid_reference (and trained_generator) on the same data version.",
    )
    if reference.backbone.split(":")[0] != cfg.eval.backbone:
        raise ChainBroken(
            stage,
            f"fid_reference uses backbone {reference.backbone!r} but eval.backbone is {cfg.eval.backbone!r}: "
            "re-materialize fid_reference",
        )
    require_file(stage, reference.stats_path, reference.stats_sha256, "fid_reference")


def _past_scores(context: dg.AssetExecutionContext, label: str, limit: int = 19) -> list[dict[str, float]]:
    """Earlier evaluations' FID, interval and floor under the same label (backbone and n), oldest first, from
    Dagster's event log: the history the UI's own plot needs a click to show."""
    records = context.instance.fetch_materializations(context.asset_key, limit=limit).records
    runs = []
    for record in reversed(records):
        meta = record.asset_materialization.metadata if record.asset_materialization else {}
        if label in meta and "fid_ci95_low" in meta:
            runs.append(
                {
                    "value": meta[label].value,
                    "low": meta["fid_ci95_low"].value,
                    "high": meta["fid_ci95_high"].value,
                    "floor": meta["floor"].value if "floor" in meta else None,
                }
            )
    return runs


@dg.asset(
    group_name="evaluation",
    code_version=code_version(*EVALUATION),
    kinds={"pytorch"},
    owners=OWNERS,
    pool="gpu",
    description="FID (95% interval over fake seeds and the reference), KID, precision/recall and IS of the EMA "
    "generator against fid_reference, next to the real train-vs-val floor; re-scores the published champion "
    "in the same run under the same protocol; decides the fid_gate and stores that decision with the scores.",
)
def generator_evaluation(
    context: dg.AssetExecutionContext,
    trained_generator: TrainedGenerator,
    fid_reference: FidReference,
    workspace: Workspace,
    gan_config: GanConfigResource,
    compute: ComputeResource,
    object_store: ObjectStoreResource,
) -> dg.Output[Evaluation]:
    from ganlib.latent import save_interpolation_strip
    from ganlib.models import load_generator
    from ganlib.samples import save_samples
    from ganlib.scoring import load_backbone, score_generator, score_onnx_generator, score_real_floor
    from ganlib.viz import save_score_history

    stage = "generator_evaluation"
    cfg = _judging_config(trained_generator, gan_config)
    with refusals_tagged(context):
        require_file(
            stage, trained_generator.checkpoint, trained_generator.checkpoint_sha256, "trained_generator"
        )
        _require_reference_for(stage, trained_generator, fid_reference, cfg)

    device = compute.torch_device()
    generator = load_generator(trained_generator.checkpoint).to(device)
    backbone = load_backbone(fid_reference.backbone, workspace.outputs("backbones"), cfg.eval, device)
    stats, data_hash = fid_reference.stats_path, fid_reference.data_hash
    score = score_generator(generator, backbone, stats, cfg.eval, data_hash, device)
    floor = score_real_floor(backbone, fid_reference.dataset_path, stats, cfg.eval, data_hash)
    score["floor"] = {"fid": floor["fid"], "fid_ci": floor["fid_ci"], "recall": floor.get("recall")}
    champion = _champion(
        context,
        object_store,
        cfg,
        workspace,
        lambda path: score_onnx_generator(path, backbone, stats, cfg.eval, data_hash),
    )
    decision = gate_decisions.fid_gate_decision(
        score,
        champion,
        fid_max=cfg.eval.fid_max,
        tolerance=cfg.eval.champion_tolerance,
        judged_sha256=trained_generator.checkpoint_sha256,
        settings_digest=cfg.evaluation_digest(),
    )
    out_dir = Path(trained_generator.run_dir)
    report_path = out_dir / "evaluation.json"
    evaluation = Evaluation(
        checkpoint_sha256=trained_generator.checkpoint_sha256,
        training_digest=trained_generator.training_digest,
        evaluation_digest=cfg.evaluation_digest(),
        reference_sha256=fid_reference.stats_sha256,
        score=score,
        champion_score=champion,
        gate=decision,
        report_path=str(report_path),
    )
    report_path.write_text(json.dumps(evaluation.model_dump(mode="json"), indent=2))
    grid_path = save_samples(generator, out_dir / "evaluation-samples.png", n=100, seed=1)
    # Smooth paths between latents are a quick visual check against memorisation (Radford et al.).
    strip_path = save_interpolation_strip(generator, out_dir / "evaluation-interpolation.png", seed=1)
    label = score["label"]
    history_path = save_score_history(
        [
            *_past_scores(context, label),
            {
                "value": score["fid"],
                "low": score["fid_ci"][0],
                "high": score["fid_ci"][1],
                "floor": floor["fid"],
            },
        ],
        out_dir / "fid-history.png",
        label=label,
        title=f"{label} over evaluations",
    )
    return dg.Output(
        evaluation,
        data_version=dg.DataVersion(evaluation.identity()[:16]),
        metadata={
            label: dg.MetadataValue.float(score["fid"]),
            "fid": dg.MetadataValue.float(score["fid"]),
            "fid_ci95_low": dg.MetadataValue.float(score["fid_ci"][0]),
            "fid_ci95_high": dg.MetadataValue.float(score["fid_ci"][1]),
            "floor": dg.MetadataValue.float(floor["fid"]),
            "backbone": score["backbone"],
            "kid": score.get("kid"),
            "precision": score.get("precision"),
            "recall": score.get("recall"),
            "inception_score": score.get("inception_score"),
            "champion_fid": decision.champion_fid,
            "champion_version": decision.champion_version or "none",
            "gate_passed": decision.passed,
            "gate_reasons": "; ".join(decision.reasons),
            "warnings": "; ".join(score.get("warnings", [])) or "none",
            "checkpoint_sha256": trained_generator.checkpoint_sha256,
            "evaluation_digest": cfg.evaluation_digest(),
            "protocol": dg.MetadataValue.json(score["protocol"]),
            "fid_history": image(history_path, "FID over evaluations", workspace.outputs()),
            "samples": image(grid_path, "evaluation samples", workspace.outputs()),
            "interpolation": image(
                strip_path, "spherical interpolation between latents, one per row", workspace.outputs()
            ),
            "report": dg.MetadataValue.path(str(report_path)),
        },
    )


@dg.asset(
    group_name="evaluation",
    code_version=code_version(*PRUNING),
    kinds={"pytorch"},
    owners=OWNERS,
    pool="gpu",
    description="GAN dissection of the generator's middle layers against a flaw judge (a classifier of "
    "lowest- vs highest-realism samples; its CAM is the artifact map), trusted only with lift >= "
    "dissect.min_lift over random masks; candidates removed structurally only when their joint removal "
    "improves FID or the low-realism fraction beyond dissect.noise_bound SDs of the seed noise. Refuses "
    "unless generator_evaluation judged exactly this checkpoint.",
)
def pruned_generator(
    context: dg.AssetExecutionContext,
    trained_generator: TrainedGenerator,
    generator_evaluation: Evaluation,
    fid_reference: FidReference,
    workspace: Workspace,
    gan_config: GanConfigResource,
    compute: ComputeResource,
    object_store: ObjectStoreResource,
) -> dg.Output[PrunedGenerator]:
    from ganlib.artifact_pruning import dissect_and_prune
    from ganlib.scoring import load_backbone, score_onnx_generator

    stage = "pruned_generator"
    with refusals_tagged(context):
        require_equal(
            stage,
            "generator_evaluation judged another checkpoint than trained_generator holds",
            generator_evaluation.checkpoint_sha256,
            trained_generator.checkpoint_sha256,
            "Re-materialize generator_evaluation (it never judged this checkpoint).",
        )
        require_file(
            stage, trained_generator.checkpoint, trained_generator.checkpoint_sha256, "trained_generator"
        )
        require_equal(
            stage,
            "generator_evaluation used another FID reference than fid_reference holds",
            generator_evaluation.reference_sha256,
            fid_reference.stats_sha256,
            "Re-materialize generator_evaluation.",
        )
        cfg = _judging_config(trained_generator, gan_config)
        _require_reference_for(stage, trained_generator, fid_reference, cfg)
    device = compute.torch_device()
    out_dir = Path(trained_generator.run_dir) / "pruned"
    # One backbone for the dissection's FIDs and the champion's re-score.
    backbone = load_backbone(fid_reference.backbone, workspace.outputs("backbones"), cfg.eval, device)
    result = dissect_and_prune(
        trained_generator.checkpoint,
        cfg,
        backbone=backbone,
        reference_stats=fid_reference.stats_path,
        data_hash=fid_reference.data_hash,
        out_dir=out_dir,
        device=device,
    )
    champion = _champion(
        context,
        object_store,
        cfg,
        workspace,
        lambda path: score_onnx_generator(
            path, backbone, fid_reference.stats_path, cfg.eval, fid_reference.data_hash
        ),
    )
    pruned_sha = sha256_file(result["checkpoint"])[0]
    decision = gate_decisions.prune_gate_decision(
        result["fid_before"],
        result["score_after"],
        champion,
        tolerance=cfg.dissect.fid_tolerance,
        champion_tolerance=cfg.eval.champion_tolerance,
        judged_sha256=pruned_sha,
        settings_digest=cfg.dissection_digest(),
    )
    report_path = out_dir / "prune.json"
    pruned = PrunedGenerator(
        checkpoint=result["checkpoint"],
        checkpoint_sha256=pruned_sha,
        parent_checkpoint_sha256=trained_generator.checkpoint_sha256,
        evaluation_identity=generator_evaluation.identity(),
        dissection_digest=cfg.dissection_digest(),
        training_config=trained_generator.config,
        units_removed=result["units_removed"],
        removed=result["removed"],
        params_before=result["params_before"],
        params_after=result["params_after"],
        fid_before=result["fid_before"],
        fid_after=result["fid_after"],
        fid_label=result["fid_label"],
        champion_score=champion,
        gate=decision,
        report_path=str(report_path),
    )
    context.log.info(result["note"])
    report = {
        **pruned.model_dump(mode="json"),
        **{k: result[k] for k in ("note", "scores", "judge", "effects", "table")},
    }
    report_path.write_text(json.dumps(report, indent=2))
    metadata = {
        "units_removed": result["units_removed"],
        "pruning": result["note"],
        "removed": dg.MetadataValue.json(result["removed"]),
        "params_before": result["params_before"],
        "params_after": result["params_after"],
        "fid_before": dg.MetadataValue.float(result["fid_before"]),
        "fid_after": dg.MetadataValue.float(result["fid_after"]),
        **_judge_metadata(result),
        "champion_fid": decision.champion_fid,
        "gate_passed": decision.passed,
        "gate_reasons": "; ".join(decision.reasons),
        "checkpoint_sha256": pruned_sha,
        "parent_checkpoint_sha256": trained_generator.checkpoint_sha256,
        "effects": table(result["table"]) if result["table"] else "no ablation measured",
        "dissection_report": dg.MetadataValue.path(result["report"]),
        "checkpoint": dg.MetadataValue.path(result["checkpoint"]),
    }
    for key, (alt, path) in result["pictures"].items():
        metadata[key] = image(path, alt, workspace.outputs())
    return dg.Output(pruned, data_version=dg.DataVersion(pruned.identity()[:16]), metadata=metadata)


def _judge_metadata(result: dict) -> dict:
    """The flaw judge's validation and the effects' noise, as numbers the UI can plot across runs."""
    judge, effects, scores = result["judge"], result["effects"], result["scores"]
    meta: dict = {}
    if judge:
        meta |= {
            "judge_lift": dg.MetadataValue.float(judge["lift"]),
            "judge_lift_shuffled": dg.MetadataValue.float(judge["lift_shuffled"]),
            "judge_accuracy": dg.MetadataValue.float(judge["accuracy"]),
            "judge_trusted": judge["trusted"],
            "judge_verdict": judge["verdict"],
        }
    if effects:
        meta |= {
            "noise_fid_sd": dg.MetadataValue.float(effects["noise_fid_sd"]),
            "noise_low_realism_sd": dg.MetadataValue.float(effects["noise_low_sd"]),
            "noise_bound_sd": dg.MetadataValue.float(effects["bound_sd"]),
        }
    if scores["low_before"] is not None:
        meta |= {
            "low_realism_before": dg.MetadataValue.float(scores["low_before"][0]),
            "low_realism_after": dg.MetadataValue.float(scores["low_after"][0]),
            "low_realism_delta_ci95": dg.MetadataValue.json(list(scores["low_delta"])),
        }
    return meta
