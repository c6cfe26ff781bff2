"""FID feature backbones: the TF-ported FID InceptionV3, and a domain CNN trained on the data (offline)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .base import FeatureBackbone, file_sha256, state_dict_sha256
from .domain import DomainBackbone, DomainNet, DomainNetConfig, load_domain_backbone, train_domain_backbone
from .inception import (
    INCEPTION_FILENAME,
    INCEPTION_SHA256,
    INCEPTION_URL,
    InceptionBackbone,
    InceptionWeightsError,
    build_fid_inception,
    load_inception_backbone,
)

__all__ = [
    "INCEPTION_FILENAME",
    "INCEPTION_SHA256",
    "INCEPTION_URL",
    "DomainBackbone",
    "DomainNet",
    "DomainNetConfig",
    "FeatureBackbone",
    "InceptionBackbone",
    "InceptionWeightsError",
    "build_fid_inception",
    "file_sha256",
    "get_backbone",
    "load_domain_backbone",
    "load_inception_backbone",
    "state_dict_sha256",
    "train_domain_backbone",
]


def get_backbone(
    kind: str,
    *,
    inception_weights: str | os.PathLike[str] | None = None,
    allow_download: bool = False,
    train_images: np.ndarray | None = None,
    train_labels: np.ndarray | None = None,
    data_hash: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> FeatureBackbone:
    """Build the backbone named by ``eval.backbone``: "inception" (weights from ``inception_weights``) or
    "domain" (trained on ``train_images``/``train_labels``, cached per ``data_hash`` in ``cache_dir``)."""
    if kind == "inception":
        return load_inception_backbone(inception_weights, allow_download=allow_download, device=device)
    if kind == "domain":
        if train_images is None or data_hash is None or cache_dir is None:
            raise ValueError("the domain backbone needs train_images, data_hash and cache_dir")
        return train_domain_backbone(train_images, train_labels, data_hash, Path(cache_dir), device=device)
    raise ValueError(f"unknown backbone {kind!r}; known: 'domain', 'inception'")
