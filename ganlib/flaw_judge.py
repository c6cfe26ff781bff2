"""The flaw judge: which generated samples are flawed, and where (Tousi et al., CVPR 2021, with the human
labels replaced by a measurement).

1. **Labels.** Each generated sample's realism score against the real manifold in backbone features
   (``ganlib.metrics.realism``): the lowest ``flawed_fraction`` are "flawed", the highest ``good_fraction``
   "good"; the middle is left out, so the two classes differ clearly.
2. **Classifier.** A small fully-convolutional network (four 3x3 convs, a 1x1 conv to one flaw-logit map,
   global average pooling) learns flawed vs good from the pixels, on a stratified split; its accuracy on the
   held-out part says whether the pixels carry the label at all.
3. **Artifact maps.** Because the logit is the mean of the 1x1 map, that map is exactly the class activation
   map (CAM, Zhou et al. 2016; Grad-CAM of the last conv reduces to it): per position, how much it pushes the
   sample towards "flawed". Upsampled to the image, its positive part is the artifact map dissection uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FlawLabels:
    realism: np.ndarray  # [N] realism score per sample
    flawed: np.ndarray  # [N] bool: among the lowest-realism samples
    good: np.ndarray  # [N] bool: among the highest-realism samples
    flawed_level: float  # realism at or below which a sample is flawed (the low-realism threshold)
    good_level: float  # realism at or above which a sample is good


def label_by_realism(
    realism: np.ndarray, flawed_fraction: float = 0.25, good_fraction: float = 0.25
) -> FlawLabels:
    """Flawed = the ``flawed_fraction`` lowest realism scores, good = the ``good_fraction`` highest."""
    r = np.asarray(realism, dtype=np.float64)
    if not (0 < flawed_fraction < 1 and 0 < good_fraction < 1 and flawed_fraction + good_fraction <= 1):
        raise ValueError(f"need 0 < fractions and flawed + good <= 1; got {flawed_fraction}, {good_fraction}")
    order = np.argsort(r, kind="stable")
    n_flawed = max(1, round(flawed_fraction * len(r)))
    n_good = max(1, round(good_fraction * len(r)))
    if n_flawed + n_good > len(r):
        raise ValueError(f"{len(r)} samples are too few to label {n_flawed} flawed and {n_good} good")
    flawed, good = np.zeros(len(r), bool), np.zeros(len(r), bool)
    flawed[order[:n_flawed]] = True
    good[order[len(r) - n_good :]] = True
    return FlawLabels(r, flawed, good, float(r[order[n_flawed - 1]]), float(r[order[len(r) - n_good]]))


class FlawClassifier(nn.Module):
    """Images [N, C, H, W] in [-1, 1] -> (flaw logit [N], CAM [N, 1, H/4, W/4]); the logit is the CAM's mean."""

    def __init__(self, channels: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(channels, w, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 3, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, 2, 1),
            nn.LeakyReLU(0.2),
        )
        self.cam = nn.Conv2d(4 * w, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = self.cam(self.features(x))
        return cam.mean((1, 2, 3)), cam


@dataclass
class FlawJudge:
    classifier: FlawClassifier
    labels: FlawLabels
    accuracy: float  # on the held-out labelled samples
    n_train: int
    n_test: int

    @torch.no_grad()
    def maps(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """``[N, 1, H, W]`` >= 0: the positive part of the CAM, bilinearly upsampled to the image size."""
        self.classifier.eval()
        out = []
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].float()
            _, cam = self.classifier(x)
            out.append(F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return torch.cat(out).clamp_min(0)

    @torch.no_grad()
    def flaw_logits(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        self.classifier.eval()
        return torch.cat(
            [
                self.classifier(images[s : s + batch_size].float())[0]
                for s in range(0, len(images), batch_size)
            ]
        )


def _split(labels: FlawLabels, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test indices over the labelled (flawed or good) samples."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in (labels.flawed, labels.good):
        idx = rng.permutation(np.flatnonzero(cls))
        n_test = max(1, round(test_fraction * len(idx))) if len(idx) > 1 else 0
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.concatenate(train), np.concatenate(test)


def train_flaw_judge(
    images: torch.Tensor,
    realism: np.ndarray,
    *,
    flawed_fraction: float = 0.25,
    good_fraction: float = 0.25,
    test_fraction: float = 0.25,
    epochs: int = 30,
    width: int = 16,
    seed: int = 0,
) -> FlawJudge:
    """Label ``images`` [N, C, H, W] (in [-1, 1], on the CPU) by ``realism`` and train the flaw classifier.

    Deterministic for a seed on the CPU (own RNG scope; the caller's RNG state is untouched).
    """
    labels = label_by_realism(realism, flawed_fraction, good_fraction)
    train_idx, test_idx = _split(labels, test_fraction, seed)
    x = images.detach().float().cpu()
    target = torch.from_numpy(labels.flawed.astype(np.float32))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FlawClassifier(x.shape[1], width)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(seed)
        tr = torch.from_numpy(train_idx)
        net.train()
        for _ in range(epochs):
            for batch in tr[torch.randperm(len(tr), generator=gen)].split(64):
                logit, _ = net(x[batch])
                loss = F.binary_cross_entropy_with_logits(logit, target[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    judge = FlawJudge(net.eval(), labels, float("nan"), len(train_idx), len(test_idx))
    if len(test_idx):
        pred = judge.flaw_logits(x[torch.from_numpy(test_idx)]) > 0
        judge.accuracy = float((pred == target[torch.from_numpy(test_idx)].bool()).float().mean())
    return judge
