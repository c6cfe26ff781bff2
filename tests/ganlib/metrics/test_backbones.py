"""Feature backbones: the FID Inception loader (synthetic weights, no download) and the domain CNN."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from torchvision.models.inception import Inception3

from ganlib.metrics.backbones import (
    INCEPTION_FILENAME,
    INCEPTION_URL,
    InceptionWeightsError,
    load_inception_backbone,
    train_domain_backbone,
)


@pytest.fixture(scope="module")
def synthetic_inception(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A weights file shaped like pt_inception-2015-12-05: torchvision's own Inception3 with 1008 classes and
    no aux head (the structure pytorch-fid loads the TF port into), without BatchNorm counters like the
    original file. Returns (directory, sha256)."""
    torch.manual_seed(0)
    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    folder = tmp_path_factory.mktemp("inception")
    path = folder / INCEPTION_FILENAME
    torch.save(state, path)
    return str(folder), hashlib.sha256(path.read_bytes()).hexdigest()


def test_inception_loads_synthetic_weights_and_extracts_features(synthetic_inception) -> None:
    folder, digest = synthetic_inception
    backbone = load_inception_backbone(folder, expected_sha256=digest)
    assert backbone.name == "inception" and backbone.weights_sha256 == digest
    gray = torch.rand(2, 1, 32, 32) * 2 - 1
    feats, probs = backbone.embed(gray)
    assert feats.shape == (2, 2048) and feats.dtype == np.float64
    assert (feats >= 0).all()  # average of ReLU outputs
    assert probs is not None and probs.shape == (2, 1008)
    assert np.allclose(probs.sum(axis=1), 1.0)
    # Grayscale is fed as three equal channels.
    assert np.allclose(backbone.features(gray.repeat(1, 3, 1, 1)), feats, atol=1e-5)
    # An 8-hex prefix (the file-name convention) is accepted too.
    assert (
        load_inception_backbone(f"{folder}/{INCEPTION_FILENAME}", expected_sha256=digest[:8]).weights_sha256
        == digest
    )


def test_inception_hash_mismatch_is_an_error(synthetic_inception) -> None:
    folder, _ = synthetic_inception
    with pytest.raises(InceptionWeightsError, match="sha256 mismatch"):
        load_inception_backbone(folder)  # the real file's hash, not the synthetic one's


def test_inception_missing_weights_names_path_and_url(tmp_path, monkeypatch) -> None:
    with pytest.raises(InceptionWeightsError) as err:
        load_inception_backbone(tmp_path / "weights")
    assert str(tmp_path / "weights" / INCEPTION_FILENAME) in str(err.value)
    assert INCEPTION_URL in str(err.value)
    # Default location: the torch.hub cache, never downloaded without allow_download.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(InceptionWeightsError, match="hub/checkpoints"):
        load_inception_backbone()


def test_domain_backbone_trains_fast_and_is_usable(digits, digits_backbone) -> None:
    assert digits_backbone.train_cpu_seconds < 2 * 20  # 20 s on 2 cores
    assert digits_backbone.name == f"domain:{digits.data_hash[:8]}"
    assert len(digits_backbone.weights_sha256) == 64
    val = digits.to_float(digits.val_u8)
    feats, probs = digits_backbone.embed(val)
    assert feats.shape == (len(val), 64) and feats.dtype == np.float64
    assert np.linalg.matrix_rank(np.cov(feats, rowvar=False)) == 64
    assert (probs.argmax(axis=1) == digits.val_labels).mean() > 0.9
    # Batching changes nothing (eval mode: no batch statistics).
    digits_backbone.batch_size = 7
    try:
        assert np.allclose(digits_backbone.features(val[:20]), feats[:20], atol=1e-5)
    finally:
        digits_backbone.batch_size = 512
    assert not digits_backbone.net.training
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        digits_backbone.features(val * 255)


def test_domain_backbone_cache_reload(digits, digits_backbone) -> None:
    path = digits_backbone.cache_dir / f"domain-{digits.data_hash}.pt"
    payload = torch.load(path, weights_only=True)
    assert payload["data_hash"] == digits.data_hash
    again = train_domain_backbone(
        digits.train_u8, digits.train_labels, digits.data_hash, digits_backbone.cache_dir, seed=0
    )
    assert again.loaded_from_cache and again.weights_sha256 == digits_backbone.weights_sha256


def test_domain_backbone_deterministic_given_seed(digits, tmp_path) -> None:
    x, y = digits.train_u8[:256], digits.train_labels[:256]
    a = train_domain_backbone(x, y, "h1", tmp_path / "a", seed=3, epochs=1)
    b = train_domain_backbone(x, y, "h1", tmp_path / "b", seed=3, epochs=1)
    c = train_domain_backbone(x, y, "h1", tmp_path / "c", seed=4, epochs=1)
    assert not a.loaded_from_cache and not b.loaded_from_cache
    assert a.weights_sha256 == b.weights_sha256
    assert a.weights_sha256 != c.weights_sha256
    # Different settings under the same data hash retrain instead of reusing the cached file.
    d = train_domain_backbone(x, y, "h1", tmp_path / "a", seed=3, epochs=2)
    assert not d.loaded_from_cache and d.weights_sha256 != a.weights_sha256


def test_domain_autoencoder_without_labels(digits, tmp_path) -> None:
    ae = train_domain_backbone(digits.train_u8[:256], None, "unlabelled01", tmp_path, seed=0, epochs=1)
    assert ae.name == "domain:unlabell" and ae.num_classes == 0
    images = digits.to_float(digits.val_u8[:10])
    assert ae.class_probs(images) is None
    assert ae.features(images).shape == (10, 64)
