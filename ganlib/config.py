"""The typed GAN config: one YAML file per experiment under ``configs/``.

Every section forbids unknown keys, so a typo fails before any training starts, naming the key and, for
enumerated fields, the allowed values.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .store import validate_name


class ConfigError(ValueError):
    """A config file or override that does not validate; the message names each bad key."""


class _Strict(BaseModel):
    # allow_inf_nan=False: `lr: .inf` or `.nan` is a typo, never a setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        """pydantic reads `steps: true` as 1; a boolean where a number is meant is a mistake."""
        annotation = cls.model_fields[info.field_name].annotation
        numeric = annotation in (int, float) or str(annotation).startswith("tuple[")
        items = v if isinstance(v, list | tuple) else [v]
        if numeric and any(isinstance(x, bool) for x in items):
            raise ValueError("expected a number, got a boolean")
        return v


class ModelConfig(_Strict):
    family: Literal["dcgan", "sngan", "stylegan_lite"] = "dcgan"
    resolution: int | None = Field(
        None,
        ge=8,
        le=1024,
        description="the image size (px) this config is built for; the processed data (params.yaml "
        "preprocess.resolution) must match it. null = whatever the data has",
    )
    z_dim: int = Field(64, ge=1, le=1024)
    g_width: int = Field(64, ge=4, le=1024, description="base channel width of the generator")
    d_width: int = Field(64, ge=4, le=1024, description="base channel width of the discriminator")
    # "auto": conditional when the dataset has labels.
    conditional: bool | Literal["auto"] = "auto"
    # Spectral norm on D's weights; "auto" = the family's default (DCGAN: off, ResNet D: on).
    d_spectral_norm: bool | Literal["auto"] = "auto"
    style_mixing: float = Field(
        0.9, ge=0.0, le=1.0, description="stylegan_lite: share of samples mixing two w"
    )

    @field_validator("resolution")
    @classmethod
    def _four_times_power_of_two(cls, v: int | None) -> int | None:
        if v is not None and (v % 4 or (v // 4) & (v // 4 - 1)):
            raise ValueError("every model family needs 4 * 2**k px (8, 16, 32, 64, 128, ...)")
        return v

    def check_resolution(self, data_resolution: int, data: str = "the training data") -> None:
        """Raise ``ConfigError`` when this config is for another image size than ``data`` has."""
        if self.resolution is not None and self.resolution != data_resolution:
            raise ConfigError(
                f"model.resolution is {self.resolution} but {data} is {data_resolution}px: set "
                f"`preprocess.resolution: {self.resolution}` in params.yaml (processed_dataset then "
                f"resizes to it), or train a config made for {data_resolution}px"
            )


class LossConfig(_Strict):
    kind: Literal["nonsaturating", "minimax", "hinge", "wgan_gp", "lsgan"] = "nonsaturating"
    # "egan": evolutionary generator updates (Wang et al. 2018) on top of the D loss above.
    strategy: Literal["standard", "egan"] = "standard"
    egan_diversity_weight: float = Field(0.001, ge=0.0)
    egan_mutations: list[Literal["minimax", "nonsaturating", "least_squares"]] = Field(
        default_factory=lambda: ["minimax", "nonsaturating", "least_squares"], min_length=1
    )
    gp_weight: float = Field(10.0, ge=0.0, description="gradient penalty weight (wgan_gp)")
    r1_gamma: float = Field(0.0, ge=0.0, description="R1 penalty on real data; 0 = off")
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5, description="one-sided: real target 1 - s")
    feature_matching: float = Field(0.0, ge=0.0, description="weight of Salimans' feature-matching G loss")
    minibatch_discrimination: bool = False
    mode_seeking: float = Field(
        0.0, ge=0.0, description="weight of the mode-seeking term (Mao et al. 2019); 0 = off"
    )


_Beta = Annotated[float, Field(ge=0.0, lt=1.0)]  # Adam's moment decays: 1 or more never forgets


class TrainConfig(_Strict):
    steps: int = Field(2000, ge=1)
    batch_size: int = Field(64, ge=1)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[_Beta, _Beta] = (0.5, 0.999)
    n_critic: int = Field(1, ge=1, description="D steps per G step")
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    ema_rampup: float | None = Field(
        0.05, gt=0.0, description="EMA half-life at most this share of the images seen; null = off"
    )
    diffaugment: list[Literal["translation", "cutout", "color"]] = Field(default_factory=list)
    checkpoint_every: int = Field(500, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"  # autocast on CUDA only; CPU always runs fp32
    channels_last: bool = True  # CUDA only
    # True: torch.compile's default mode; "reduce-overhead": also CUDA graphs (launch-bound small models).
    compile: bool | Literal["reduce-overhead"] = False
    num_workers: int = Field(0, ge=0)
    log_every: int = Field(50, ge=1)


class EvalConfig(_Strict):
    backbone: Literal["domain", "inception"] = "domain"
    inception_weights: str | None = None  # local file or cache dir for pt_inception-2015-12-05
    allow_download: bool = False
    n_samples: int = Field(2048, ge=16)
    n_seeds: int = Field(3, ge=1, description="FID repeats over fake-sample seeds, for a confidence interval")
    bootstrap_rounds: int = Field(
        200, ge=0, description="resamples of the reference for the real side of the FID interval; 0 = off"
    )
    fid_max: float = Field(80.0, gt=0, description="absolute bound for the fid_gate")
    champion_tolerance: float = Field(0.10, ge=0, description="allowed relative regression vs champion")


class DissectConfig(_Strict):
    """The pruning stage: the flaw judge (ganlib.flaw_dissect), the noise-bounded effects
    (ganlib.ablation_effects) and the prune_gate's tolerance."""

    enabled: bool = True
    layers: list[str] | None = None  # None = the generator's middle layers
    n_samples: int = Field(2048, ge=16, description="generated images the flaw judge is trained and run on")
    quantile: float = Field(0.99, gt=0.5, lt=1.0, description="a unit is 'on' above this quantile")
    candidates: int = Field(16, ge=1, description="units (by IoU and by contrast) that get an ablation test")
    max_remove: int = Field(8, ge=0)
    flawed_fraction: float = Field(0.25, gt=0, lt=0.5, description="lowest-realism share labelled flawed")
    good_fraction: float = Field(0.25, gt=0, lt=0.5, description="highest-realism share labelled good")
    artifact_quantile: float = Field(0.97, gt=0.5, lt=1.0, description="CAM pixels above it are artifacts")
    lift_units: int = Field(4, ge=1, description="the judge's lift averages this many best units")
    min_lift: float = Field(3.0, ge=0, description="below this lift over random masks nothing is removed")
    min_accuracy: float = Field(0.6, ge=0, le=1, description="below this held-out accuracy, likewise")
    effect_samples: int = Field(1024, ge=16, description="samples per seed for every effect")
    effect_seeds: int = Field(4, ge=2, description="seeds for selection, as many again for confirmation")
    noise_bound: float = Field(2.0, ge=0, description="remove only beyond this many SDs of the seed noise")
    fid_tolerance: float = Field(0.05, ge=0, description="prune_gate: allowed relative FID increase")


class ExportConfig(_Strict):
    model_name: str = "digits-dcgan"
    opset: int = Field(18, ge=13, le=23)
    parity_atol: float = Field(1e-4, gt=0)

    @field_validator("model_name")
    @classmethod
    def _store_accepts_name(cls, v: str) -> str:
        return validate_name(v, "model name")  # the object store's own rule, checked before any training


class GANConfig(_Strict):
    name: str = "default"
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    dissect: DissectConfig = DissectConfig()
    export: ExportConfig = ExportConfig()

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "-_." for c in v):
            raise ValueError("use letters, digits, '-', '_' or '.'")
        return v

    def section_digest(self, *sections: str) -> str:
        """A short stable hash of the named sections (what one stage's artifact depends on)."""
        dumped = self.model_dump(mode="json")
        blob = json.dumps({s: dumped[s] for s in sections}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def training_digest(self) -> str:
        """What the trained weights depend on besides the data: model, loss and train sections, less the
        purely operational keys (which device, how often to log or checkpoint, loader workers)."""
        dumped = self.model_dump(mode="json")
        train = {k: v for k, v in dumped["train"].items() if k not in OPERATIONAL_TRAIN_KEYS}
        # resolution: null trains on whatever the data has (its hash names the run too), so configs from
        # before the key existed keep their digest and their run folders.
        model = {k: v for k, v in dumped["model"].items() if not (k == "resolution" and v is None)}
        # Likewise mode seeking when off: the weights of a run without it do not depend on the key.
        loss = {k: v for k, v in dumped["loss"].items() if not (k == "mode_seeking" and v == 0.0)}
        blob = json.dumps({"model": model, "loss": loss, "train": train}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def evaluation_digest(self) -> str:
        return self.section_digest("eval")

    def dissection_digest(self) -> str:
        # Pruning measures FID before/after with the evaluation protocol, so both sections define it.
        return self.section_digest("dissect", "eval")

    def export_digest(self) -> str:
        return self.section_digest("export")

    def judged_with(self, current: GANConfig) -> GANConfig:
        """This (training) config with the later stages' sections taken from ``current``: what a stage uses
        when it judges, prunes or exports weights that this config trained."""
        return self.model_copy(update={s: getattr(current, s) for s in STAGE_SECTIONS})


# The sections that decide the weights, and those each later stage takes from the config in force.
TRAINING_SECTIONS = ("model", "loss", "train")
STAGE_SECTIONS = ("eval", "dissect", "export")
OPERATIONAL_TRAIN_KEYS = frozenset({"device", "num_workers", "log_every", "checkpoint_every"})

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def _format_errors(
    err: ValidationError, source: str, overrides: dict[str, Any] | None = None, overrides_source: str = ""
) -> str:
    """One line naming each bad key, the value, and where it came from (the file or the overrides)."""
    problems = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        where = ".".join(loc) or "<root>"
        origin = overrides_source if overrides_source and _has_path(overrides or {}, loc) else source
        if e["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}' (in {origin})")
        else:
            problems.append(f"{where}: {e['msg']} (got {e.get('input')!r}, in {origin})")
    return f"invalid GAN config ({source}): " + "; ".join(problems)


def _has_path(tree: dict[str, Any], loc: list[str]) -> bool:
    """Whether an error location (or its first key under a list) lies inside the overrides."""
    node: Any = tree
    for key in loc:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
        if not isinstance(node, dict):
            return True
    return True


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_config(
    data: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    source: str = "<dict>",
    overrides_source: str = "overrides",
) -> GANConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid GAN config ({source}): expected a mapping at the top level")
    merged = _deep_merge(data, overrides or {})
    try:
        return GANConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source, overrides, overrides_source)) from None


def config_path(name_or_path: str | Path) -> Path:
    """``configs/<name>.yaml`` for a bare name; a ``.yaml`` path as given. Raises ``ConfigError`` if absent."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"no GAN config '{name_or_path}' (looked at {path}); known configs: {known}")
    return path


def load_config(
    name_or_path: str | Path = "default",
    overrides: dict[str, Any] | None = None,
    overrides_source: str = "overrides",
) -> GANConfig:
    """Load ``configs/<name>.yaml`` (or a path), apply nested ``overrides``, validate. An error names the
    file or ``overrides_source`` as the place each bad key came from."""
    path = config_path(name_or_path)
    data = yaml.safe_load(path.read_text()) or {}
    return parse_config(data, overrides, source=str(path), overrides_source=overrides_source)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["train.steps=500", "loss.kind=hinge"]`` -> ``{"train": {"steps": 500}, "loss": {"kind": "hinge"}}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"an override is KEY=VALUE (e.g. train.steps=500), got {item!r}")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out
