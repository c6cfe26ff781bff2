"""Evaluation as the workflow runs it: the FID backbone for a data version, the real reference statistics,
and the scores of a generator, all as plain functions over paths (the pipeline stays free of tensors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import EvalConfig
from .data.shards import load_split
from .data.versions import short_key
from .metrics import FeatureBackbone, FeatureStats, evaluate_samples, get_backbone, load_domain_backbone
from .metrics.backbones.domain import cache_path
from .models import Generator
from .pixels import to_model_range


@dataclass
class Reference:
    path: Path  # .npz: stats (mu, sigma, n, backbone) + the raw val features for KID and precision/recall
    n: int
    dim: int
    warnings: list[str] = field(default_factory=list)


def build_backbone(
    cfg: EvalConfig, processed_dir: str | Path, data_hash: str, cache_dir: Path, device: str
) -> FeatureBackbone:
    """The configured backbone; the domain one is trained on the train split once per data version."""
    train = load_split(processed_dir, "train") if cfg.backbone == "domain" else None
    return get_backbone(
        cfg.backbone,
        inception_weights=cfg.inception_weights,
        allow_download=cfg.allow_download,
        train_images=None if train is None else train.images,
        train_labels=None if train is None else train.labels,
        data_hash=short_key(data_hash),
        cache_dir=cache_dir,
        device=device,
    )


def load_backbone(name: str, cache_dir: Path, cfg: EvalConfig, device: str) -> FeatureBackbone:
    """Reload the backbone a reference was computed with, by its recorded name."""
    if name.startswith("domain:"):
        return load_domain_backbone(cache_path(cache_dir, name.split(":", 1)[1]), device=device)
    return get_backbone(
        name, inception_weights=cfg.inception_weights, allow_download=cfg.allow_download, device=device
    )


def _as_images(uint8: np.ndarray) -> torch.Tensor:
    return to_model_range(torch.from_numpy(np.ascontiguousarray(uint8)))


def compute_reference(
    backbone: FeatureBackbone, processed_dir: str | Path, out: Path, split: str = "val"
) -> Reference:
    real = load_split(processed_dir, split)
    # Shard-sized blocks: RAM holds one block of float images, never the whole split.
    blocks = [backbone.features(_as_images(block)) for block in real.images.chunks()]
    features = np.concatenate(blocks) if blocks else np.zeros((0, backbone.feature_dim))
    stats = FeatureStats.from_features(features, backbone=backbone.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        np.savez(
            f,
            mu=stats.mu,
            sigma=stats.sigma,
            n=np.int64(stats.n),
            backbone=np.str_(stats.backbone),
            features=features,
        )
    warnings = []
    if stats.rank_deficient:
        warnings.append(
            f"{stats.n} reference samples <= feature dim {stats.dim}: covariance is rank-deficient"
        )
    elif stats.n < 2048:
        warnings.append(f"{stats.n} reference samples (< 2048): the FID has a larger finite-sample bias")
    return Reference(path=out, n=stats.n, dim=stats.dim, warnings=warnings)


def load_reference(path: str | Path) -> tuple[FeatureStats, np.ndarray]:
    stats = FeatureStats.load(path)
    with np.load(path, allow_pickle=False) as z:
        features = z["features"]
    return stats, features


def sampler(generator: Generator, device: str, batch_size: int = 256):
    """``(seed, n) -> images`` in [-1, 1] on the CPU, with balanced classes for conditional generators."""

    @torch.no_grad()
    def sample(seed: int, n: int) -> torch.Tensor:
        z, y = generator.sample_inputs(n, seed=seed, device=device)
        out = [
            generator(z[i : i + batch_size], None if y is None else y[i : i + batch_size]).float().cpu()
            for i in range(0, n, batch_size)
        ]
        return torch.cat(out).clamp_(-1, 1)

    return sample


def _score(
    sample_fn, backbone: FeatureBackbone, reference_path: str | Path, cfg: EvalConfig, data_hash: str
) -> dict[str, Any]:
    """FID over ``cfg.n_seeds`` seeds (interval over both sides), KID, precision/recall, IS: a JSON-able dict.
    Every scorer below goes through here, so challenger, champion and floor share one protocol."""
    stats, real_features = load_reference(reference_path)
    report = evaluate_samples(
        backbone,
        stats,
        sample_fn,
        cfg.n_samples,
        cfg.n_seeds,
        real_features,
        data_hash=data_hash,
        bootstrap_rounds=cfg.bootstrap_rounds,
    )
    d = report.to_dict()
    if d["fid_ci"] is None:
        d["fid_ci"] = [report.fid, report.fid]
    d["backbone"] = report.backbone
    d["kid"] = report.kid_mean
    return d


def score_generator(
    generator: Generator,
    backbone: FeatureBackbone,
    reference_path: str | Path,
    cfg: EvalConfig,
    data_hash: str,
    device: str,
) -> dict[str, Any]:
    """The scores of a PyTorch generator (see ``_score``)."""
    return _score(sampler(generator.to(device).eval(), device), backbone, reference_path, cfg, data_hash)


def score_onnx_generator(
    onnx_path: str | Path,
    backbone: FeatureBackbone,
    reference_path: str | Path,
    cfg: EvalConfig,
    data_hash: str,
) -> dict[str, Any]:
    """The scores of an exported generator run by ONNX Runtime (the champion, as it is served), under the
    same protocol: same backbone, reference, sample count and seeds. Conditional models get balanced
    classes, as ``sampler`` gives the PyTorch generator."""
    from .serving import OnnxGenerator

    onnx = OnnxGenerator(onnx_path, device="cpu")

    def sample(seed: int, n: int) -> torch.Tensor:
        return torch.from_numpy(onnx.run(onnx.latents(n, seed))).clamp_(-1, 1)

    return _score(sample, backbone, reference_path, cfg, data_hash)


def score_real_floor(
    backbone: FeatureBackbone,
    processed_dir: str | Path,
    reference_path: str | Path,
    cfg: EvalConfig,
    data_hash: str,
) -> dict[str, Any]:
    """The floor: real *training* images scored as if a generator drew them (with replacement, per seed),
    under the same protocol as a generator. No generator of this data can be expected to score below it."""
    train = load_split(processed_dir, "train").images  # memory-mapped: only the drawn rows are read

    def sample(seed: int, n: int) -> torch.Tensor:
        rows = np.random.default_rng(seed).integers(0, len(train), n)
        return _as_images(train[rows])

    return _score(sample, backbone, reference_path, cfg, data_hash)
