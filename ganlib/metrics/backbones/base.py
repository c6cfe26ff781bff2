"""The one interface every FID feature network implements."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn


@contextmanager
def full_fp32(device: torch.device) -> Iterator[None]:
    """Disable TF32 on CUDA for the block: TF32 convolutions shift features by ~1e-3 relative, so the same
    images would score differently on a GPU than on the CPU. Restores the caller's settings."""
    if device.type != "cuda":
        yield
        return
    mm, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    try:
        saved = (mm.allow_tf32, cudnn.allow_tf32)
    except RuntimeError:  # the caller set TF32 through the newer fp32_precision API (torch >= 2.9)
        saved_new = (mm.fp32_precision, cudnn.conv.fp32_precision)
        mm.fp32_precision = cudnn.conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            mm.fp32_precision, cudnn.conv.fp32_precision = saved_new
        return
    mm.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        mm.allow_tf32, cudnn.allow_tf32 = saved


class FeatureBackbone(ABC):
    """A frozen feature network: images in [-1, 1] -> float64 features (and class probabilities).

    Subclasses set ``name`` (recorded in every score label, e.g. "inception" or "domain:1a2b3c4d"),
    ``weights_sha256``, ``resize_mode``, ``feature_dim``, ``num_classes`` (0 = no class head) and ``net``,
    and implement ``_forward`` for one batch.
    """

    name: str
    weights_sha256: str
    resize_mode: str
    feature_dim: int
    num_classes: int
    net: nn.Module
    device: torch.device
    batch_size: int

    @abstractmethod
    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features ``[B, D]`` and class logits ``[B, K]`` (or None) for a batch already on the device."""

    def _check(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
            raise ValueError("images must be a float tensor [N, C, H, W] in [-1, 1]")
        if images.numel() and (float(images.min()) < -1.001 or float(images.max()) > 1.001):
            raise ValueError(
                f"images must be in [-1, 1]; got range [{float(images.min()):.3g}, {float(images.max()):.3g}]"
            )

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Features ``[N, D]`` float64 and class probabilities ``[N, K]`` float64 (None without a class
        head), in one batched, gradient-free, eval-mode pass."""
        self._check(images)
        was_training = self.net.training
        self.net.eval()
        feats, probs = [], []
        try:
            with full_fp32(self.device):
                for start in range(0, images.shape[0], self.batch_size):
                    batch = images[start : start + self.batch_size].to(self.device, torch.float32)
                    f, logits = self._forward(batch)
                    feats.append(f.double().cpu())
                    if logits is not None:
                        probs.append(torch.softmax(logits.double(), dim=1).cpu())
        finally:
            self.net.train(was_training)
        features = torch.cat(feats).numpy() if feats else np.zeros((0, self.feature_dim))
        class_probs = torch.cat(probs).numpy() if probs else None
        return features, class_probs

    def features(self, images: torch.Tensor) -> np.ndarray:
        """Float64 features ``[N, D]`` of images ``[N, C, H, W]`` in [-1, 1]."""
        return self.embed(images)[0]

    def class_probs(self, images: torch.Tensor) -> np.ndarray | None:
        """Class probabilities ``[N, K]`` for the Inception Score, or None when there is no class head."""
        if not self.num_classes:
            return None
        return self.embed(images)[1]


def state_dict_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A content hash of a state dict (names, dtypes, shapes, values), independent of file format.

    Used where the file bytes are not reproducible (torch.save writes a random serialization id).
    """
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
