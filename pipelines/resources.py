"""Resources: where the workspace lives, which GAN config runs, the compute device, the object store.

Each is a Dagster ``ConfigurableResource``, so a launch can override any field as run config (for example
``resources: {gan_config: {config: {name: sngan}}}``), and tests point them at temp directories.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

from ganlib.config import GANConfig, load_config

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

    def params(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load(self.params_file.read_text()) or {}


class GanConfigResource(dg.ConfigurableResource):
    """Which ``configs/<name>.yaml`` runs, plus nested overrides as a JSON object (validated up front)."""

    name: str = "default"
    overrides_json: str = "{}"

    def load(self) -> GANConfig:
        try:
            overrides = json.loads(self.overrides_json or "{}")
        except json.JSONDecodeError as exc:
            raise dg.Failure(f"gan_config.overrides_json is not valid JSON: {exc}") from None
        return load_config(self.name, overrides)


class ComputeResource(dg.ConfigurableResource):
    """The training/evaluation device: "auto" picks CUDA when present, else CPU."""

    device: str = "auto"

    def torch_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise dg.Failure("compute.device is 'cuda' but no CUDA device is visible to this process")
        return self.device


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
