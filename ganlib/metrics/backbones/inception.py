"""The standard FID InceptionV3 (pytorch-fid's ``fid_inception_v3``) behind the backbone interface.

Architecture: torchvision's Inception3(num_classes=1008, aux_logits=False) with the TF-compatible blocks
below swapped in (average pools that ignore padding; max pool in the last block), exactly as pytorch-fid
does, so the TF-ported weights ``pt_inception-2015-12-05-6726825d.pth`` load unchanged and the 2048-d pool3
features match the reference FID implementation.

Weights are never fetched implicitly: pass a file or a cache dir; only ``allow_download=True`` downloads.
The file is verified against its full sha256 (``INCEPTION_SHA256``; its first 8 hex digits are the
``6726825d`` in the file name, torch.hub's naming convention).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

from .base import FeatureBackbone, file_sha256

INCEPTION_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILENAME}"
# Full sha256 of the released file (published alongside pinned evaluation assets; prefix = file name's).
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


class InceptionWeightsError(RuntimeError):
    """The FID Inception weights are missing or do not match the expected hash."""


class FIDInceptionA(InceptionA):
    """InceptionA whose branch pool ignores zero padding, like TensorFlow's average pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(InceptionC):
    """InceptionC whose branch pool ignores zero padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        branch7x7dbl = self.branch7x7dbl_1(x)
        branch7x7dbl = self.branch7x7dbl_3(self.branch7x7dbl_2(branch7x7dbl))
        branch7x7dbl = self.branch7x7dbl_5(self.branch7x7dbl_4(branch7x7dbl))
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class FIDInceptionE(InceptionE):
    """InceptionE with TF's pooling: average without padding (Mixed_7b) or max pooling (Mixed_7c)."""

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__(in_channels)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        if self.pool == "max":
            # The TF graph the FID weights come from uses max pooling here (unlike the paper).
            branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


def build_fid_inception() -> Inception3:
    """The FID InceptionV3 architecture with untrained weights (pytorch-fid's ``fid_inception_v3``)."""
    net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE(1280, pool="avg")
    net.Mixed_7c = FIDInceptionE(2048, pool="max")
    return net


def default_cache_dir() -> Path:
    """Where torch.hub (and so pytorch-fid) caches downloaded weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _missing_message(path: Path) -> str:
    return (
        f"FID Inception weights not found at {path}.\n"
        f"Download {INCEPTION_URL}\n"
        f"and put it there (or pass its path / directory as eval.inception_weights), or allow the download "
        f"(eval.allow_download=true). Without internet, use the default 'domain' backbone instead."
    )


def resolve_inception_weights(
    weights: str | os.PathLike[str] | None = None, allow_download: bool = False
) -> Path:
    """The weights file to load: ``weights`` itself if it is a file, ``weights/<INCEPTION_FILENAME>`` if it
    is a directory, else the torch.hub cache. Downloads there only when ``allow_download`` is true."""
    if weights is None:
        path = default_cache_dir() / INCEPTION_FILENAME
    else:
        path = Path(weights)
        # A directory (existing, or named without a file suffix) holds the file under its standard name.
        if path.is_dir() or (not path.exists() and path.suffix not in {".pth", ".pt"}):
            path = path / INCEPTION_FILENAME
    if path.is_file():
        return path
    if not allow_download:
        raise InceptionWeightsError(_missing_message(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(INCEPTION_URL, str(path), hash_prefix=INCEPTION_SHA256[:8], progress=True)
    return path


class InceptionBackbone(FeatureBackbone):
    """2048-d pool3 features and 1008-way class probabilities of the FID InceptionV3.

    Input: images in [-1, 1], 1 or 3 channels; grayscale is repeated to RGB and every image is resized to
    299x299 bilinearly (align_corners=False), as pytorch-fid does. Class probabilities use the logits
    without the fc bias, as the original Inception Score code (and torch-fidelity) does.
    """

    resize_mode = "bilinear-299"
    feature_dim = 2048
    num_classes = 1008

    def __init__(
        self, net: Inception3, weights_sha256: str, device: str | torch.device = "cpu", batch_size: int = 64
    ):
        self.name = "inception"
        self.weights_sha256 = weights_sha256
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = net.to(self.device).eval().requires_grad_(False)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        elif x.shape[1] != 3:
            raise ValueError(f"Inception takes 1- or 3-channel images; got {x.shape[1]} channels")
        # Bilinear resizing is linear, so resizing in [-1, 1] equals pytorch-fid's resize-then-rescale.
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        n = self.net
        x = n.maxpool1(n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x))))
        x = n.maxpool2(n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x)))
        for block in (
            n.Mixed_5b,
            n.Mixed_5c,
            n.Mixed_5d,
            n.Mixed_6a,
            n.Mixed_6b,
            n.Mixed_6c,
            n.Mixed_6d,
            n.Mixed_6e,
        ):
            x = block(x)
        x = n.Mixed_7c(n.Mixed_7b(n.Mixed_7a(x)))
        pool3 = F.adaptive_avg_pool2d(x, 1).flatten(1)
        logits = pool3 @ n.fc.weight.T
        return pool3, logits


def load_inception_backbone(
    weights: str | os.PathLike[str] | None = None,
    *,
    allow_download: bool = False,
    expected_sha256: str = INCEPTION_SHA256,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
) -> InceptionBackbone:
    """Load the FID InceptionV3 from a local file / cache dir, verifying its sha256.

    ``expected_sha256`` may be the full hex digest or a prefix of at least 8 hex digits (tests pass the
    digest of a synthetic file). Raises ``InceptionWeightsError`` when the file is missing (naming the path
    and URL), when its hash differs, or when its tensors do not fit the architecture.
    """
    if len(expected_sha256) < 8:
        raise ValueError("expected_sha256 must have at least 8 hex digits")
    path = resolve_inception_weights(weights, allow_download)
    digest = file_sha256(path)
    if not digest.startswith(expected_sha256.lower()):
        raise InceptionWeightsError(
            f"sha256 mismatch for {path}: expected {expected_sha256}, got {digest}. "
            f"The file is corrupt or not {INCEPTION_FILENAME}; delete it and fetch {INCEPTION_URL} again."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = build_fid_inception()
    result = net.load_state_dict(state, strict=False)
    # Old checkpoints lack BatchNorm's num_batches_tracked counters; those are unused in eval mode.
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise InceptionWeightsError(
            f"{path} does not fit the FID InceptionV3: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return InceptionBackbone(net, weights_sha256=digest, device=device, batch_size=batch_size)
