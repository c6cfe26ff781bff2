"""Fréchet distance against pytorch-fid's scipy ``sqrtm`` formula and closed forms."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import linalg

from ganlib.metrics import FeatureStats, frechet_distance


def reference_fid(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's ``calculate_frechet_distance`` main branch (scipy sqrtm of the product)."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if np.iscomplexobj(covmean):
        assert np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def pytorch_fid_eps_branch(mu1, sigma1, mu2, sigma2, eps) -> float:
    """pytorch-fid's fallback: eps only inside the square root, traces unregularised."""
    diff = mu1 - mu2
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset)).real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def random_features(
    rng: np.random.Generator, n: int, d: int, scale: float = 1.0, shift: float = 0.0
) -> np.ndarray:
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return scale * (rng.standard_normal((n, d)) @ mix) + shift + rng.standard_normal(d) * 0.1


@pytest.mark.parametrize(
    ("d", "n1", "n2", "shift"),
    [(8, 200, 150, 0.0), (64, 500, 400, 0.5), (128, 1000, 600, 0.0), (256, 800, 900, 2.0)],
)
def test_matches_scipy_sqrtm_reference(d: int, n1: int, n2: int, shift: float) -> None:
    rng = np.random.default_rng(d)
    a = FeatureStats.from_features(random_features(rng, n1, d))
    b = FeatureStats.from_features(random_features(rng, n2, d, scale=1.3, shift=shift))
    ours = frechet_distance(a, b)
    ref = reference_fid(a.mu, a.sigma, b.mu, b.sigma)
    assert not ours.eps_added and ours.note == ""
    assert ours.value == pytest.approx(ref, rel=1e-6)


def test_same_distribution_small_value_matches_reference() -> None:
    # Two samples of one distribution: a small FID, where cancellation is hardest.
    rng = np.random.default_rng(7)
    mix = rng.standard_normal((32, 32))
    a = FeatureStats.from_features(rng.standard_normal((3000, 32)) @ mix)
    b = FeatureStats.from_features(rng.standard_normal((3000, 32)) @ mix)
    ref = reference_fid(a.mu, a.sigma, b.mu, b.sigma)
    assert frechet_distance(a, b).value == pytest.approx(ref, rel=1e-6)


def test_identical_stats_give_zero() -> None:
    rng = np.random.default_rng(1)
    a = FeatureStats.from_features(random_features(rng, 300, 40))
    assert abs(frechet_distance(a, a).value) < 1e-9 * np.trace(a.sigma)


def test_diagonal_closed_form() -> None:
    # Commuting (diagonal) covariances: FID = |mu1-mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(2)
    va, vb = rng.uniform(0.1, 4, 50), rng.uniform(0.1, 4, 50)
    ma, mb = rng.standard_normal(50), rng.standard_normal(50)
    a = FeatureStats(mu=ma, sigma=np.diag(va), n=1000)
    b = FeatureStats(mu=mb, sigma=np.diag(vb), n=1000)
    expected = np.sum((ma - mb) ** 2) + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2)
    assert frechet_distance(a, b).value == pytest.approx(expected, rel=1e-10)


def test_rank_deficient_adds_eps_and_says_so() -> None:
    rng = np.random.default_rng(3)
    d, eps = 64, 1e-6
    a = FeatureStats.from_features(random_features(rng, 40, d))  # n <= D: rank <= 39
    b = FeatureStats.from_features(random_features(rng, 500, d, shift=0.3))
    res = frechet_distance(a, b, eps=eps)
    assert res.eps_added
    assert "eps" in res.note and "singular" in res.note
    eye = np.eye(d) * eps
    # The exact distance of the regularised Gaussians ...
    assert res.value == pytest.approx(reference_fid(a.mu, a.sigma + eye, b.mu, b.sigma + eye), rel=1e-6)
    # ... which is pytorch-fid's fallback plus the 2*D*eps it leaves out of the traces.
    assert res.value - pytorch_fid_eps_branch(a.mu, a.sigma, b.mu, b.sigma, eps) == pytest.approx(
        2 * d * eps, rel=1e-3
    )


def test_exactly_singular_covariance_with_many_samples() -> None:
    # n > D but a duplicated feature column: the covariance is singular, Cholesky must fail.
    rng = np.random.default_rng(4)
    x = rng.standard_normal((500, 20))
    x[:, 5] = x[:, 4]
    a = FeatureStats.from_features(x)
    b = FeatureStats.from_features(rng.standard_normal((500, 20)) * 1.5)
    res = frechet_distance(a, b)
    assert res.eps_added
    eye = np.eye(20) * 1e-6
    assert res.value == pytest.approx(reference_fid(a.mu, a.sigma + eye, b.mu, b.sigma + eye), rel=1e-6)


def test_refuses_mixed_backbones_and_dimensions() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((100, 8))
    with pytest.raises(ValueError, match="different backbones"):
        frechet_distance(
            FeatureStats.from_features(x, "inception"), FeatureStats.from_features(x, "domain:12345678")
        )
    with pytest.raises(ValueError, match="dimensions"):
        frechet_distance(FeatureStats.from_features(x), FeatureStats.from_features(x[:, :4]))


def test_stats_from_features_and_npz_roundtrip(tmp_path) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    s = FeatureStats.from_features(x, backbone="domain:abcdef12")
    xd = x.astype(np.float64)
    centred = xd - xd.sum(axis=0) / 50
    assert np.allclose(s.mu, xd.sum(axis=0) / 50)
    assert np.allclose(s.sigma, centred.T @ centred / 49)
    assert s.mu.dtype == np.float64 and s.n == 50
    back = FeatureStats.load(s.save(tmp_path / "ref.npz"))
    assert (tmp_path / "ref.npz").is_file()
    assert back.n == 50 and back.backbone == "domain:abcdef12"
    assert np.array_equal(back.mu, s.mu) and np.array_equal(back.sigma, s.sigma)


def test_faster_than_scipy_reference() -> None:
    rng = np.random.default_rng(8)
    d = 384
    a = FeatureStats.from_features(random_features(rng, 800, d))
    b = FeatureStats.from_features(random_features(rng, 800, d, shift=1.0))

    def best_of(fn, repeats=3) -> float:
        # CPU time, not wall time: other jobs on the shared cores then slow neither side.
        times = []
        for _ in range(repeats):
            t = time.process_time()
            fn()
            times.append(time.process_time() - t)
        return min(times)

    ours = best_of(lambda: frechet_distance(a, b))
    ref = best_of(lambda: reference_fid(a.mu, a.sigma, b.mu, b.sigma))
    assert ours < ref, f"ours {ours:.3f}s vs scipy sqrtm {ref:.3f}s"
