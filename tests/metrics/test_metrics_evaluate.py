"""evaluate_samples: per-seed FIDs, interval, protocol, labels and the comparability guard."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import torch
from scipy import linalg

from ganlib.metrics import (
    FeatureStats,
    IncomparableScoresError,
    ScoreReport,
    comparable,
    evaluate_samples,
    require_comparable,
)
from ganlib.metrics.backbones import FeatureBackbone


class ProjectionBackbone(FeatureBackbone):
    """A fixed random linear map of the pixels (cheap and deterministic), with a 3-class softmax head."""

    resize_mode = "none"
    num_classes = 3

    def __init__(self, name: str = "toy:00000000", dim: int = 6, pixels: int = 16) -> None:
        gen = torch.Generator().manual_seed(0)
        self.name, self.weights_sha256, self.feature_dim = name, "ab" * 32, dim
        self.net = torch.nn.Linear(pixels, dim)
        with torch.no_grad():
            self.net.weight.copy_(torch.randn(dim, pixels, generator=gen))
        self.device, self.batch_size = torch.device("cpu"), 64

    def _forward(self, x):
        f = self.net(x.flatten(1))
        return f, f[:, :3]


def sample_fn(seed: int, n: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 4, 4, generator=gen) * 1.6 - 0.8).clamp(-1, 1)


def scipy_fid(a: FeatureStats, b: FeatureStats) -> float:
    diff = a.mu - b.mu
    return float(
        diff @ diff
        + np.trace(a.sigma)
        + np.trace(b.sigma)
        - 2 * np.trace(linalg.sqrtm(a.sigma @ b.sigma).real)
    )


@pytest.fixture(scope="module")
def setup():
    backbone = ProjectionBackbone()
    gen = torch.Generator().manual_seed(99)
    real = torch.rand(300, 1, 4, 4, generator=gen) * 2 - 1
    real_feats = backbone.features(real)
    reference = FeatureStats.from_features(real_feats, backbone=backbone.name)
    return backbone, reference, real_feats


def test_report_values_protocol_and_json(setup) -> None:
    backbone, reference, real_feats = setup
    report = evaluate_samples(
        backbone,
        reference,
        sample_fn,
        n=200,
        n_seeds=3,
        real_features_for_kid_pr=real_feats,
        data_hash="deadbeefcafe",
        kid_subsets=10,
        kid_subset_size=100,
        is_splits=2,
    )
    # Per-seed FIDs: the scipy formula on features of exactly those seeds' samples.
    expected = [
        scipy_fid(reference, FeatureStats.from_features(backbone.features(sample_fn(s, 200))))
        for s in range(3)
    ]
    assert report.seeds == [0, 1, 2]
    assert report.fid_per_seed == pytest.approx(expected, rel=1e-6)
    assert report.fid == pytest.approx(np.mean(expected), rel=1e-6)
    half = scipy.stats.t.ppf(0.975, 2) * np.std(expected, ddof=1) / np.sqrt(3)
    assert report.fid_ci == pytest.approx((np.mean(expected) - half, np.mean(expected) + half), rel=1e-6)
    assert report.kid_mean is not None and report.kid_std is not None
    assert 0 <= report.precision <= 1 and 0 <= report.recall <= 1
    assert 1 <= report.inception_score <= 3
    p = report.protocol
    assert p["backbone"] == "toy:00000000" and p["weights_sha256"] == "ab" * 32 and p["resize"] == "none"
    assert (p["n_real"], p["n_fake"], p["reference_split"], p["data_hash"]) == (
        300,
        200,
        "val",
        "deadbeefcafe",
    )
    assert set(p["versions"]) >= {"torch", "numpy", "scipy"}
    assert report.label == "fid[toy:00000000]@200"
    assert any("n_fake=200 < 2048" in w for w in report.warnings)
    # JSON round trip.
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["label"] == report.label
    back = ScoreReport.from_dict({**d, "extra_key_added_by_a_caller": 1})
    assert back.fid == report.fid and back.fid_ci == report.fid_ci and back.protocol == report.protocol


def test_single_seed_and_rank_deficient_warnings(setup) -> None:
    backbone, reference, _ = setup
    report = evaluate_samples(backbone, reference, sample_fn, n=5, n_seeds=1, is_splits=5)
    assert report.fid_ci is None
    text = " ".join(report.warnings)
    assert "n_seeds=1" in text and "rank-deficient" in text and "eps" in text
    assert report.kid_mean is None and report.precision is None


def test_refuses_to_compare_different_backbones(setup) -> None:
    backbone, reference, _ = setup
    a = evaluate_samples(backbone, reference, sample_fn, n=50, n_seeds=2)
    other = ProjectionBackbone(name="inception")
    b_ref = FeatureStats.from_features(other.features(sample_fn(7, 100)), backbone="inception")
    b = evaluate_samples(other, b_ref, sample_fn, n=50, n_seeds=2)
    assert comparable(a, a) and not comparable(a, b)
    with pytest.raises(IncomparableScoresError, match="different backbones"):
        require_comparable(a, b)
    # Reference stats from another backbone are refused up front.
    with pytest.raises(IncomparableScoresError):
        evaluate_samples(other, reference, sample_fn, n=50, n_seeds=1)
