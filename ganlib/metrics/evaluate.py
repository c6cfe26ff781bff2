"""Score a generator: FID over several sample seeds (with a confidence interval), KID, precision/recall
and Inception Score, plus the protocol needed to know which numbers may be compared.

The FID is the mean over k fake-sample seeds. Its 95% interval covers both sides of the estimate:

* the fake side: the spread of the k per-seed FIDs, t(0.975, k-1) * s / sqrt(k);
* the real side: a bootstrap over the reference samples (resampled with replacement, the fake features held
  fixed), the standard deviation of the FID's change, 1.96 * sd;

combined as half-width = sqrt(fake_half^2 + real_half^2). With a few hundred reference images the real side
dominates; an interval over seeds alone understates the spread. The bootstrap errs wide: against references
truly redrawn from the population (Monte Carlo, Gaussian features, D = 8 and 64) it overstates the real
side's spread 1.3-2.5x (tests/ganlib/metrics/test_evaluate.py), so the interval is conservative. The interval does not remove FID's upward
bias at finite n, which is why scores are only comparable at equal n, backbone and reference.

KID is computed on features standardized by the reference's per-dimension mean and standard deviation
(``kid_standardize``), so the cubic kernel sees values of order one whatever the backbone's scale (on raw
features of a small backbone the kernel reaches ~1e5 and real-vs-real KID is dominated by its variance).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import scipy
import scipy.stats
import torch

from .backbones.base import FeatureBackbone
from .frechet import frechet_distance
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .precision_recall import precision_recall
from .stats import FeatureStats

SampleFn = Callable[[int, int], torch.Tensor]  # (seed, n) -> images [n, C, H, W] in [-1, 1]

RECOMMENDED_N = 2048  # the usual minimum for FID (and the feature dimension of Inception)


class IncomparableScoresError(ValueError):
    """Two scores were measured under different protocols (backbone, weights or sample count)."""


@dataclass
class ScoreReport:
    """Scores of one generator against one reference split. All values are plain floats/lists/dicts."""

    fid: float
    fid_ci: tuple[float, float] | None  # None when n_seeds == 1
    fid_per_seed: list[float]
    seeds: list[int]
    kid_mean: float | None = None
    kid_std: float | None = None
    precision: float | None = None
    recall: float | None = None
    inception_score: float | None = None
    inception_score_std: float | None = None
    fid_ci_fake_only: tuple[float, float] | None = None  # the interval over seeds alone, for comparison
    fid_se_real: float | None = None  # bootstrap standard deviation from the reference side
    kid_subset_size: int | None = None  # the subset size KID really used
    protocol: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def backbone(self) -> str:
        return str(self.protocol.get("backbone", ""))

    @property
    def n_fake(self) -> int:
        return int(self.protocol.get("n_fake", 0))

    @property
    def label(self) -> str:
        """e.g. ``fid[domain:1a2b3c4d]@2048``: the backbone and sample count every FID must travel with."""
        return f"fid[{self.backbone}]@{self.n_fake}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fid_ci"] = list(self.fid_ci) if self.fid_ci is not None else None
        d["fid_ci_fake_only"] = list(self.fid_ci_fake_only) if self.fid_ci_fake_only is not None else None
        d["label"] = self.label
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreReport:
        """Inverse of ``to_dict``; keys that are not fields (``label``, extras callers added) are ignored."""
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        for key in ("fid_ci", "fid_ci_fake_only"):
            if d.get(key) is not None:
                d[key] = (float(d[key][0]), float(d[key][1]))
        return cls(**d)


def comparison_problems(a: ScoreReport, b: ScoreReport) -> list[str]:
    """Why two reports' FIDs may not be compared (empty when they may)."""
    problems = []
    if a.backbone != b.backbone:
        problems.append(f"different backbones: {a.backbone!r} vs {b.backbone!r}")
    elif a.protocol.get("weights_sha256") != b.protocol.get("weights_sha256"):
        problems.append(f"same backbone name {a.backbone!r} but different weights (retrained or replaced)")
    if a.n_fake != b.n_fake:
        problems.append(f"different sample counts: n_fake={a.n_fake} vs {b.n_fake} (FID is biased in n)")
    if a.protocol.get("reference_split") != b.protocol.get("reference_split"):
        problems.append(
            f"different reference splits: {a.protocol.get('reference_split')!r} vs {b.protocol.get('reference_split')!r}"
        )
    return problems


def comparable(a: ScoreReport, b: ScoreReport) -> bool:
    return not comparison_problems(a, b)


def require_comparable(a: ScoreReport, b: ScoreReport) -> None:
    """Raise ``IncomparableScoresError`` (naming each difference) unless ``a`` and ``b`` are comparable."""
    problems = comparison_problems(a, b)
    if problems:
        raise IncomparableScoresError(f"cannot compare {a.label} with {b.label}: " + "; ".join(problems))


def reference_stats(backbone: FeatureBackbone, images: torch.Tensor) -> FeatureStats:
    """Feature stats of real images (e.g. the validation split), tagged with the backbone name."""
    return FeatureStats.from_features(backbone.features(images), backbone=backbone.name)


def t_half_width(values: list[float]) -> float | None:
    """Half-width of the 95% student-t interval of the mean of ``values`` (None for fewer than 2)."""
    k = len(values)
    if k < 2:
        return None
    return float(scipy.stats.t.ppf(0.975, k - 1) * np.std(values, ddof=1) / np.sqrt(k))


def real_side_sd(
    real_features: np.ndarray, fake_features: list[np.ndarray], backbone: str, rounds: int, seed: int = 0
) -> float:
    """Standard deviation of the seed-mean FID when the reference samples are redrawn (bootstrap).

    Each round resamples the reference rows with replacement and recomputes the FID against every seed's
    fixed fake features; the spread of the mean over seeds is what the finite reference contributes.
    """
    rng = np.random.default_rng(seed)
    fakes = [FeatureStats.from_features(f, backbone) for f in fake_features]
    values = []
    for _ in range(rounds):
        rows = rng.integers(0, len(real_features), len(real_features))
        ref = FeatureStats.from_features(real_features[rows], backbone)
        values.append(np.mean([frechet_distance(ref, f).value for f in fakes]))
    return float(np.std(values, ddof=1))


def standardize(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets scaled by the real set's per-dimension mean and standard deviation."""
    mu = real.mean(axis=0)
    sd = real.std(axis=0)
    sd[sd == 0] = 1.0
    return (real - mu) / sd, (fake - mu) / sd


def evaluate_samples(
    backbone: FeatureBackbone,
    reference: FeatureStats,
    sample_fn: SampleFn,
    n: int,
    n_seeds: int = 3,
    real_features_for_kid_pr: np.ndarray | None = None,
    *,
    data_hash: str = "",
    reference_split: str = "val",
    seed_offset: int = 0,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    kid_standardize: bool = True,
    bootstrap_rounds: int = 200,
    pr_k: int = 3,
    is_splits: int = 10,
    eps: float = 1e-6,
) -> ScoreReport:
    """Score ``sample_fn`` against ``reference`` (stats of real features from ``backbone``).

    FID is computed for seeds ``seed_offset .. seed_offset + n_seeds - 1`` (n fake images each); KID,
    precision/recall (against ``real_features_for_kid_pr``, skipped when None) and the Inception Score
    (when the backbone has class probabilities) use the first seed's samples. With the real features and
    ``bootstrap_rounds > 0`` the FID interval also covers the reference side (see the module docstring).
    """
    if reference.backbone and reference.backbone != backbone.name:
        raise IncomparableScoresError(
            f"reference stats come from backbone {reference.backbone!r}, not {backbone.name!r}: recompute them"
        )
    if reference.dim != backbone.feature_dim:
        raise ValueError(f"reference stats have D={reference.dim}, backbone gives D={backbone.feature_dim}")
    if n < 2 or n_seeds < 1:
        raise ValueError("need n >= 2 samples and n_seeds >= 1")

    warnings: list[str] = []
    seeds = [seed_offset + i for i in range(n_seeds)]
    fids: list[float] = []
    per_seed: list[np.ndarray] = []
    first_probs: np.ndarray | None = None
    for seed in seeds:
        images = sample_fn(seed, n)
        if images.shape[0] != n:
            raise ValueError(f"sample_fn(seed={seed}, n={n}) returned {images.shape[0]} images")
        feats, probs = backbone.embed(images)
        if not per_seed:
            first_probs = probs
        per_seed.append(feats)
        result = frechet_distance(reference, FeatureStats.from_features(feats, backbone.name), eps=eps)
        fids.append(result.value)
        if result.eps_added:
            warnings.append(f"seed {seed}: {result.note}")
    first_feats = per_seed[0]

    if n < RECOMMENDED_N:
        warnings.append(
            f"n_fake={n} < {RECOMMENDED_N}: FID is biased upward at small n; compare only at equal n"
        )
    if n <= backbone.feature_dim:
        warnings.append(f"n_fake={n} <= D={backbone.feature_dim}: the fake covariance is rank-deficient")
    if reference.rank_deficient:
        warnings.append(
            f"n_real={reference.n} <= D={reference.dim}: the reference covariance is rank-deficient"
        )
    if reference.n < n:
        warnings.append(
            f"the reference has {reference.n} samples, fewer than the {n} the protocol draws: its side "
            "dominates the FID's uncertainty (the interval includes it when the real features are given)"
        )

    fid = float(np.mean(fids))
    fake_half = t_half_width(fids)
    real_sd = None
    if real_features_for_kid_pr is not None and bootstrap_rounds > 1:
        real_sd = real_side_sd(real_features_for_kid_pr, per_seed, backbone.name, bootstrap_rounds)
    halves = [h for h in (fake_half, None if real_sd is None else 1.96 * real_sd) if h is not None]
    half = float(np.sqrt(sum(h * h for h in halves))) if halves else None
    if half is None:
        warnings.append("n_seeds=1 and no real features: no confidence interval for FID")
    report = ScoreReport(
        fid=fid,
        fid_ci=None if half is None else (max(0.0, fid - half), fid + half),  # a distance is never negative
        fid_per_seed=fids,
        seeds=seeds,
        fid_ci_fake_only=None if fake_half is None else (max(0.0, fid - fake_half), fid + fake_half),
        fid_se_real=real_sd,
    )
    if real_features_for_kid_pr is not None:
        real_k, fake_k = real_features_for_kid_pr, first_feats
        if kid_standardize:
            real_k, fake_k = standardize(np.asarray(real_k, np.float64), np.asarray(fake_k, np.float64))
        kid = kernel_inception_distance(real_k, fake_k, num_subsets=kid_subsets, subset_size=kid_subset_size)
        report.kid_mean, report.kid_std, report.kid_subset_size = kid.mean, kid.std, kid.subset_size
        if kid.subset_size < kid_subset_size:
            warnings.append(
                f"KID subsets hold {kid.subset_size} samples, not {kid_subset_size}: only "
                f"{len(real_features_for_kid_pr)} real and {len(first_feats)} fake samples"
            )
        pr = precision_recall(real_features_for_kid_pr, first_feats, k=pr_k)
        report.precision, report.recall = pr.precision, pr.recall
    else:
        warnings.append("no real features given: KID and precision/recall not computed")
    if first_probs is not None and n >= is_splits:
        score = inception_score(first_probs, splits=is_splits)
        report.inception_score, report.inception_score_std = score.mean, score.std

    report.protocol = {
        "backbone": backbone.name,
        "weights_sha256": backbone.weights_sha256,
        "resize": backbone.resize_mode,
        "feature_device": str(backbone.device),
        "feature_dim": backbone.feature_dim,
        "n_real": reference.n,
        "n_fake": n,
        "n_seeds": n_seeds,
        "reference_split": reference_split,
        "data_hash": data_hash,
        "fid_ci_method": (
            "95%: sqrt((t_{k-1} * sd_seeds / sqrt(k))^2 + (1.96 * sd_bootstrap_real)^2), "
            f"{bootstrap_rounds} bootstrap rounds over the reference"
            if real_sd is not None
            else "95%: student-t over per-seed FIDs (reference side not covered)"
        ),
        "kid": {
            "subsets": kid_subsets,
            "subset_size": report.kid_subset_size,
            "subset_size_requested": kid_subset_size,
            "kernel": "(x.y/D+1)^3",
            "features": "standardized by the reference's mean and sd" if kid_standardize else "raw",
        },
        "precision_recall_k": pr_k,
        "inception_score_splits": is_splits,
        "eps": eps,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
    }
    report.warnings = warnings
    return report
