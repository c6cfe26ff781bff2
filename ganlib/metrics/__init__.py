"""Generative-model metrics in plain PyTorch/numpy/scipy: exact FID, KID, precision/recall, Inception
Score, the feature backbones they run on, and a scored, labelled report (``evaluate_samples``)."""

from .backbones import (
    DomainBackbone,
    FeatureBackbone,
    InceptionBackbone,
    InceptionWeightsError,
    get_backbone,
    load_domain_backbone,
    load_inception_backbone,
    train_domain_backbone,
)
from .evaluate import (
    IncomparableScoresError,
    ScoreReport,
    comparable,
    comparison_problems,
    evaluate_samples,
    reference_stats,
    require_comparable,
)
from .frechet import FrechetResult, frechet_distance
from .inception_score import InceptionScore, inception_score
from .kid import KIDResult, kernel_inception_distance
from .precision_recall import PrecisionRecall, precision_recall
from .stats import FeatureStats

__all__ = [
    "DomainBackbone",
    "FeatureBackbone",
    "FeatureStats",
    "FrechetResult",
    "InceptionBackbone",
    "InceptionScore",
    "InceptionWeightsError",
    "IncomparableScoresError",
    "KIDResult",
    "PrecisionRecall",
    "ScoreReport",
    "comparable",
    "comparison_problems",
    "evaluate_samples",
    "frechet_distance",
    "get_backbone",
    "inception_score",
    "kernel_inception_distance",
    "load_domain_backbone",
    "load_inception_backbone",
    "precision_recall",
    "reference_stats",
    "require_comparable",
    "train_domain_backbone",
]
