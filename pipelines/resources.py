"""Resources: where the workspace lives, which GAN config runs, the compute device, the object store.

Each is a Dagster ``ConfigurableResource``, so a launch can override any field as run config (for example
``resources: {gan_config: {config: {name: sngan}}}``), and tests point them at temp directories.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field as PydanticField

from ganlib.config import ConfigError, GANConfig, load_config
from pipelines.run_config import SECTION_CONFIGS, overrides_from

REPO_ROOT = Path(__file__).resolve().parent.parent


class Workspace(dg.ConfigurableResource):
    """A DVC + git workspace holding dvc.yaml, params.yaml, data/ and run outputs.

    The embedded default is this checkout (``GAN_WORKSPACE`` overrides it); tests use a temp git repo.
    """

    root: str = os.environ.get("GAN_WORKSPACE", str(REPO_ROOT))

    @property
    def path(self) -> Path:
        return Path(self.root).resolve()

    @property
    def params_file(self) -> Path:
        return self.path / "params.yaml"

    @property
    def processed_dir(self) -> Path:
        return self.path / "data" / "processed"

    def raw_dir(self, name: str) -> Path:
        return self.path / "data" / "raw" / name

    def outputs(self, *parts: str) -> Path:
        p = self.path.joinpath("outputs", *parts)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def resolve_source(self, source: str) -> str:
        """A relative image-folder path in params.yaml is relative to the workspace, not the process's cwd."""
        if source == "digits" or source.startswith(("torchvision:", "s3://")) or Path(source).is_absolute():
            return source
        return str(self.path / source)

    def params(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load(self.params_file.read_text()) or {}


ModelOverrides = SECTION_CONFIGS["model"]
LossOverrides = SECTION_CONFIGS["loss"]
TrainOverrides = SECTION_CONFIGS["train"]
EvalOverrides = SECTION_CONFIGS["eval"]
DissectOverrides = SECTION_CONFIGS["dissect"]
ExportOverrides = SECTION_CONFIGS["export"]


class GanConfigResource(dg.ConfigurableResource):
    """Which ``configs/<name>.yaml`` runs, and typed overrides of any of its keys, section by section.

    Launching with an unknown key or a value outside an enumeration fails at launch (Dagster checks the
    schema); ranges and cross-field rules are checked by ganlib as the first asset (raw_images) starts,
    before ingestion or DVC run. Errors name the file or the run config as the place the bad value came from.
    """

    name: str = PydanticField("default", description="configs/NAME.yaml: which experiment runs")
    model: ModelOverrides = ModelOverrides()  # type: ignore[valid-type]
    loss: LossOverrides = LossOverrides()  # type: ignore[valid-type]
    train: TrainOverrides = TrainOverrides()  # type: ignore[valid-type]
    eval: EvalOverrides = EvalOverrides()  # type: ignore[valid-type]
    dissect: DissectOverrides = DissectOverrides()  # type: ignore[valid-type]
    export: ExportOverrides = ExportOverrides()  # type: ignore[valid-type]

    @classmethod
    def with_overrides(cls, name: str = "default", overrides: dict[str, Any] | None = None):
        """Build from a nested dict, as tests and notebooks do: ``with_overrides("default", {"train": {...}})``."""
        return cls(name=name, **{k: SECTION_CONFIGS[k](**v) for k, v in (overrides or {}).items()})

    def overrides(self) -> dict[str, Any]:
        return overrides_from({s: getattr(self, s) for s in SECTION_CONFIGS})

    def load(self, workspace: Workspace | None = None) -> GANConfig:
        """The validated config; with ``workspace``, also checked against the data it will be trained on
        (``model.resolution`` vs params.yaml ``preprocess.resolution``), before any data work starts."""
        try:
            cfg = load_config(self.name, self.overrides(), overrides_source="run config resources.gan_config")
            if workspace is not None:
                params = workspace.params().get("preprocess", {})
                if "resolution" in params:
                    where = f"params.yaml preprocess.resolution ({workspace.params_file})"
                    cfg.model.check_resolution(int(params["resolution"]), where)
        except ConfigError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        return cfg


class ComputeResource(dg.ConfigurableResource):
    """The training/evaluation device: "auto" picks CUDA when present, else CPU."""

    device: str = "auto"
    processes: int = PydanticField(
        1,
        description="training processes per node (one per GPU): > 1 launches `torchrun "
        "--nproc_per_node=K` (DDP; gloo on CPU) from the trained_generator asset",
    )
    nodes: int = PydanticField(
        1,
        description="machines the training step runs on: > 1 starts a multi-node torchrun job (c10d "
        "rendezvous) through the node_launcher resource (a Kubernetes Indexed Job in the deployment)",
    )

    def check_layout(self) -> None:
        for key in ("processes", "nodes"):
            if getattr(self, key) < 1:
                raise dg.Failure(f"compute.{key} must be >= 1, got {getattr(self, key)}", allow_retries=False)

    def torch_device(self) -> str:
        from ganlib.devices import select_device

        try:
            return select_device(self.device).type
        except (RuntimeError, ValueError) as exc:
            raise dg.Failure(f"compute.device: {exc}", allow_retries=False) from None


class ObjectStoreResource(dg.ConfigurableResource):
    """Where exported generators are published: a local directory (default) or ``s3://bucket/prefix``.

    S3 credentials come from the standard AWS chain (env, profile, instance role); they are never part of
    this resource's config, so they never reach the run's logs or metadata.
    """

    uri: str = os.environ.get("GAN_STORE_URI", str(REPO_ROOT / "outputs" / "object_store"))
    endpoint_url: str | None = os.environ.get("GAN_STORE_ENDPOINT_URL")

    def open(self):
        from ganlib.store import open_store

        return open_store(self.uri, endpoint_url=self.endpoint_url)
