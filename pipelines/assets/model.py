"""Model assets: the FID reference, training, evaluation (with the gate decision) and pruning."""

import json
from pathlib import Path

import dagster as dg

from pipelines import gates
from pipelines.metadata import image, table
from pipelines.resources import ComputeResource, GanConfigResource, ObjectStoreResource, Workspace

OWNERS = ["team:ml-research"]


def _short(data_hash: str) -> str:
    return data_hash.split(".")[0][:8]


@dg.asset(
    group_name="evaluation",
    kinds={"pytorch", "numpy"},
    owners=OWNERS,
    pool="gpu",
    description="Feature statistics (mean, covariance) of the real val split under the configured FID "
    "backbone. The offline default backbone is a small network trained on the train split, cached per data "
    "version; recomputed only when the data or the backbone change.",
)
def fid_reference(
    context: dg.AssetExecutionContext,
    processed_dataset: dict,
    workspace: Workspace,
    gan_config: GanConfigResource,
    compute: ComputeResource,
) -> dg.Output[dict]:
    from ganlib.evaluation import build_backbone, compute_reference

    cfg = gan_config.load()
    data_hash = processed_dataset["dvc_hash"]
    out_dir = workspace.outputs("fid_reference", _short(data_hash))
    backbone = build_backbone(
        cfg.eval, processed_dataset["path"], data_hash, workspace.outputs("backbones"), compute.torch_device()
    )
    ref = compute_reference(
        backbone, processed_dataset["path"], out_dir / f"{backbone.name.replace(':', '-')}.npz"
    )
    return dg.Output(
        {"stats_path": str(ref.path), "backbone": backbone.name, "n": ref.n, "data_hash": data_hash},
        data_version=dg.DataVersion(f"{backbone.name}@{data_hash}"),
        metadata={
            "backbone": backbone.name,
            "weights_sha256": backbone.weights_sha256,
            "samples": ref.n,
            "feature_dim": ref.dim,
            "stats": str(ref.path),
            "warnings": "; ".join(ref.warnings) or "none",
        },
    )


@dg.asset(
    group_name="training",
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
    "an EMA generator; checkpoints and resumes from `outputs/train/CONFIG-HASH-DATA/`.",
)
def trained_generator(
    context: dg.AssetExecutionContext,
    processed_dataset: dict,
    workspace: Workspace,
    gan_config: GanConfigResource,
    compute: ComputeResource,
) -> dg.Output[dict]:
    from ganlib.data.shards import load_split
    from ganlib.models import load_generator
    from ganlib.training import NonFiniteLossError, train
    from ganlib.viz import save_grid, save_loss_plot

    cfg = gan_config.load()
    if cfg.train.device == "auto" and compute.device != "auto":
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": compute.device})})
    data_hash = processed_dataset["dvc_hash"]
    run_dir = workspace.outputs("train", f"{cfg.name}-{cfg.digest()}-{_short(data_hash)}")
    split = load_split(processed_dataset["path"], "train")

    def on_log(step: int, values: dict[str, float]) -> None:
        context.log.info(
            f"step {step}/{cfg.train.steps}: " + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        )

    try:
        result = train(cfg, split, run_dir, resume=True, progress=True, on_log=on_log)
    except NonFiniteLossError as exc:
        raise dg.Failure(str(exc), metadata={"run_dir": str(run_dir)}) from None
    if result.resumed_from >= cfg.train.steps:
        context.log.info(f"checkpoint in {run_dir} already has {result.resumed_from} steps: nothing to train")

    generator = load_generator(result.checkpoint)
    z, y = generator.sample_inputs(100, seed=0)
    import torch

    with torch.no_grad():
        samples = generator(z, y).numpy()
    grid_path = save_grid(samples, run_dir / "samples.png", nrow=10)
    plot_path = save_loss_plot(result.history, run_dir / "losses.png", title=f"{cfg.name}: losses")
    return dg.Output(
        {
            "checkpoint": str(result.checkpoint),
            "run_dir": str(run_dir),
            "config_name": cfg.name,
            "config_digest": cfg.digest(),
            "config": cfg.model_dump(mode="json"),
            "data_hash": data_hash,
            "model_spec": generator.spec.to_dict(),
        },
        metadata={
            "config": cfg.name,
            "config_digest": cfg.digest(),
            "family": cfg.model.family,
            "steps": cfg.train.steps,
            "resumed_from_step": result.resumed_from,
            "device": result.device,
            "images_per_sec": round(result.images_per_sec, 1),
            "params": sum(p.numel() for p in generator.parameters()),
            "checkpoint": dg.MetadataValue.path(str(result.checkpoint)),
            "samples": image(grid_path, "samples"),
            "losses": image(plot_path, "loss curves"),
        },
    )


@dg.asset(
    group_name="evaluation",
    kinds={"pytorch"},
    owners=OWNERS,
    pool="gpu",
    description="FID (with a confidence interval over seeds), KID, precision/recall and IS of the EMA "
    "generator against fid_reference; decides the fid_gate against the absolute bound and the champion "
    "(the last exported model) and stores that decision with the scores.",
)
def generator_evaluation(
    context: dg.AssetExecutionContext,
    trained_generator: dict,
    fid_reference: dict,
    workspace: Workspace,
    gan_config: GanConfigResource,
    compute: ComputeResource,
    object_store: ObjectStoreResource,
) -> dg.Output[dict]:
    from ganlib.evaluation import load_backbone, score_generator
    from ganlib.latent import save_interpolation_strip
    from ganlib.models import load_generator
    from ganlib.store import StoreError, read_latest, read_manifest
    from ganlib.viz import save_grid

    cfg = gan_config.load()
    device = compute.torch_device()
    generator = load_generator(trained_generator["checkpoint"]).to(device)
    backbone = load_backbone(fid_reference["backbone"], workspace.outputs("backbones"), cfg.eval, device)
    score = score_generator(
        generator, backbone, fid_reference["stats_path"], cfg.eval, fid_reference["data_hash"], device
    )

    # The champion is the last model that passed and was exported: `latest` in the object store.
    try:
        store = object_store.open()
        latest = read_latest(store, cfg.export.model_name)
        champion = read_manifest(store, cfg.export.model_name, latest["version"]) if latest else None
    except StoreError as exc:
        raise dg.Failure(f"cannot read the champion from the object store: {exc}") from None
    champion_score = None
    if champion and champion["fid"].get("value") is not None:
        champion_score = {
            "fid": champion["fid"]["value"],
            "backbone": champion["fid"].get("backbone"),
            "version": champion["version"],
        }
    decision = gates.fid_gate(score, champion_score, cfg.eval.fid_max, cfg.eval.champion_tolerance)
    out_dir = Path(trained_generator["run_dir"])
    report = {"score": score, "gate": decision, "checkpoint": trained_generator["checkpoint"]}
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    import torch

    z, y = generator.sample_inputs(100, seed=1)
    with torch.no_grad():
        grid_path = save_grid(generator(z, y).cpu().numpy(), out_dir / "evaluation-samples.png")
    # Smooth paths between latents are a quick visual check against memorisation (Radford et al.).
    strip_path = save_interpolation_strip(generator, out_dir / "evaluation-interpolation.png", seed=1)
    label = score["label"]
    return dg.Output(
        report,
        metadata={
            label: dg.MetadataValue.float(score["fid"]),
            "fid": score["fid"],
            "fid_ci95": f"[{score['fid_ci'][0]:.3f}, {score['fid_ci'][1]:.3f}]",
            "backbone": score["backbone"],
            "kid": score.get("kid"),
            "precision": score.get("precision"),
            "recall": score.get("recall"),
            "inception_score": score.get("inception_score"),
            "champion_fid": decision["champion_fid"],
            "champion_version": decision["champion_version"] or "none",
            "gate_passed": decision["passed"],
            "gate_reasons": "; ".join(decision["reasons"]),
            "protocol": dg.MetadataValue.json(score["protocol"]),
            "samples": image(grid_path, "evaluation samples"),
            "interpolation": image(strip_path, "spherical interpolation between latents, one per row"),
            "report": dg.MetadataValue.path(str(out_dir / "evaluation.json")),
        },
    )


@dg.asset(
    group_name="evaluation",
    kinds={"pytorch"},
    owners=OWNERS,
    pool="gpu",
    description="GAN dissection of the generator's middle layers: units whose activation overlaps the "
    "discriminator's artifact map, verified by ablation (FID and realism), removed structurally.",
)
def pruned_generator(
    context: dg.AssetExecutionContext,
    trained_generator: dict,
    generator_evaluation: dict,
    fid_reference: dict,
    workspace: Workspace,
    gan_config: GanConfigResource,
    compute: ComputeResource,
) -> dg.Output[dict]:
    from ganlib.artifact_pruning import dissect_and_prune

    cfg = gan_config.load()
    out_dir = Path(trained_generator["run_dir"]) / "pruned"
    result = dissect_and_prune(
        trained_generator["checkpoint"],
        cfg,
        backbone_name=fid_reference["backbone"],
        reference_stats=fid_reference["stats_path"],
        data_hash=fid_reference["data_hash"],
        out_dir=out_dir,
        backbone_cache=workspace.outputs("backbones"),
        device=compute.torch_device(),
    )
    decision = gates.prune_gate(result["fid_before"], result["fid_after"], cfg.dissect.fid_tolerance)
    result["gate"] = decision
    (out_dir / "prune.json").write_text(json.dumps(result, indent=2))
    metadata = {
        "units_removed": result["units_removed"],
        "removed": dg.MetadataValue.json(result["removed"]),
        "params_before": result["params_before"],
        "params_after": result["params_after"],
        "fid_before": result["fid_before"],
        "fid_after": result["fid_after"],
        "gate_passed": decision["passed"],
        "gate_reasons": "; ".join(decision["reasons"]),
        "units": table(result["table"][:20]) if result["table"] else "no candidate units",
        "checkpoint": dg.MetadataValue.path(result["checkpoint"]),
    }
    if result.get("strip"):
        metadata["before_after"] = image(result["strip"], "same latents before/after ablation")
    return dg.Output(result, metadata=metadata)
