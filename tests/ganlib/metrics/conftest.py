"""Shared fixtures for the metrics tests: sklearn digits at 32x32 and a domain backbone trained on them."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ganlib.pixels import to_model_range


@pytest.fixture(autouse=True)
def _one_thread():
    """Run each metrics test single-threaded (torch and BLAS), restoring the settings afterwards: on the
    shared 2-core test machine, busy-waiting thread pools made these small workloads ~10x slower."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Digits:
    train_u8: np.ndarray  # [N, 1, 32, 32] uint8
    train_labels: np.ndarray
    val_u8: np.ndarray
    val_labels: np.ndarray
    data_hash: str

    @staticmethod
    def to_float(u8: np.ndarray) -> torch.Tensor:
        return to_model_range(torch.from_numpy(u8))


@pytest.fixture(scope="session")
def digits() -> Digits:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images).float()[:, None] / 16.0  # 8x8 in 0..16 -> [0, 1]
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    perm = np.random.default_rng(0).permutation(len(u8))
    n_train = 1200
    tr, va = perm[:n_train], perm[n_train:]
    data_hash = hashlib.sha256(u8[tr].tobytes() + d.target[tr].tobytes()).hexdigest()[:16]
    return Digits(u8[tr], d.target[tr], u8[va], d.target[va], data_hash)


@pytest.fixture(scope="session")
def digits_backbone(digits: Digits, tmp_path_factory: pytest.TempPathFactory):
    """The domain backbone trained on the digits training split.

    ``train_cpu_seconds`` is the process CPU time of the training: unlike wall time it does not grow when
    other jobs share the cores, so "< 20 s on 2 cores" is checked as < 40 CPU seconds.
    """
    from ganlib.metrics.backbones import train_domain_backbone

    cache = tmp_path_factory.mktemp("domain-cache")
    start = time.process_time()
    backbone = train_domain_backbone(digits.train_u8, digits.train_labels, digits.data_hash, cache, seed=0)
    backbone.train_cpu_seconds = time.process_time() - start
    backbone.cache_dir = cache
    return backbone
