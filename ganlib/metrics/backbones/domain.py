"""The offline default FID backbone: a small CNN trained on the real training split of the dataset.

With labels it is a classifier and the features are its penultimate layer (pre-activation, D=64 by
default, so a few hundred samples give a full-rank covariance); its softmax gives class probabilities for
the Inception Score. Without labels it is an autoencoder and the features are the bottleneck.

Its scores are only comparable with scores from the same trained network, hence the name
``domain:<first 8 chars of the data hash>`` and the weights hash in every report. The weights are cached
per data hash at ``cache_dir/domain-<hash>.pt`` and reloaded instead of retrained.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.versions import short_key
from ...pixels import to_model_range
from .base import FeatureBackbone, state_dict_sha256

INPUT_SIZE = 32  # every image is resized to 32x32 before the network


@dataclass(frozen=True)
class DomainNetConfig:
    """What rebuilds a domain network (stored in the cache file next to the weights)."""

    kind: str  # "classifier" | "autoencoder"
    in_channels: int
    num_classes: int  # 0 for the autoencoder
    feature_dim: int = 64
    width: int = 32
    seed: int = 0
    epochs: int = 0


def _trunk(in_channels: int, width: int) -> nn.Sequential:
    """Three conv stages, 32 -> 4 pixels; flattened to width*2 * 16 values."""

    def stage(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]

    return nn.Sequential(
        *stage(in_channels, width // 2), *stage(width // 2, width), *stage(width, width * 2), nn.Flatten()
    )


class DomainNet(nn.Module):
    """Encoder to a ``feature_dim`` embedding plus either a class head or a decoder."""

    def __init__(self, cfg: DomainNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        flat = cfg.width * 2 * (INPUT_SIZE // 8) ** 2
        self.encoder = nn.Sequential(_trunk(cfg.in_channels, cfg.width), nn.Linear(flat, cfg.feature_dim))
        if cfg.kind == "classifier":
            self.head: nn.Module = nn.Sequential(nn.ReLU(), nn.Linear(cfg.feature_dim, cfg.num_classes))
        elif cfg.kind == "autoencoder":
            w = cfg.width
            self.head = nn.Sequential(
                nn.Linear(cfg.feature_dim, w * 2 * 16),
                nn.Unflatten(1, (w * 2, 4, 4)),
                nn.ReLU(),
                nn.ConvTranspose2d(w * 2, w, 4, 2, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(w, w // 2, 4, 2, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(w // 2, cfg.in_channels, 4, 2, 1),
                nn.Tanh(),
            )
        else:
            raise ValueError(f"unknown domain network kind {cfg.kind!r}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return z, self.head(z)


def _to_input(images: torch.Tensor) -> torch.Tensor:
    if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        images = F.interpolate(
            images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True
        )
    return images


class DomainBackbone(FeatureBackbone):
    """A trained ``DomainNet`` behind the backbone interface (see the module docstring)."""

    resize_mode = f"bilinear-antialias-{INPUT_SIZE}"

    def __init__(
        self,
        net: DomainNet,
        data_hash: str,
        device: str | torch.device = "cpu",
        batch_size: int = 512,
        loaded_from_cache: bool = False,
    ) -> None:
        self.data_hash = data_hash
        self.name = f"domain:{short_key(data_hash)}"
        self.config = net.cfg
        self.feature_dim = net.cfg.feature_dim
        self.num_classes = net.cfg.num_classes if net.cfg.kind == "classifier" else 0
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.net = net.to(self.device).eval().requires_grad_(False)
        self.weights_sha256 = state_dict_sha256(net.state_dict())
        self.loaded_from_cache = loaded_from_cache

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"{self.name} was trained on {self.config.in_channels}-channel images; got {x.shape[1]}"
            )
        z, out = self.net(_to_input(x))
        return z, (out if self.num_classes else None)


def _as_float_images(images: np.ndarray) -> torch.Tensor:
    """uint8 [0, 255] (or float already in [-1, 1]) -> float32 in [-1, 1]."""
    arr = np.asarray(images)
    if arr.ndim != 4:
        raise ValueError(f"images must be [N, C, H, W]; got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return torch.from_numpy(to_model_range(arr))
    t = torch.from_numpy(arr.astype(np.float32))
    if float(t.min()) < -1.001 or float(t.max()) > 1.001:
        raise ValueError("float images must be in [-1, 1] (or pass uint8 in [0, 255])")
    return t


def cache_path(cache_dir: str | os.PathLike[str], data_hash: str) -> Path:
    return Path(cache_dir) / f"domain-{data_hash}.pt"


def save_domain_net(net: DomainNet, data_hash: str, path: str | os.PathLike[str]) -> Path:
    """Atomically write weights and config (plain tensors and types: loadable with weights_only=True)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "ganlib-domain-backbone/1",
        "data_hash": data_hash,
        "config": asdict(net.cfg),
        "state_dict": net.state_dict(),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # readers never see a half-written file
    return path


def load_domain_backbone(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> DomainBackbone:
    payload: dict[str, Any] = torch.load(Path(path), map_location="cpu", weights_only=True)
    if payload.get("format") != "ganlib-domain-backbone/1":
        raise ValueError(f"{path} is not a ganlib domain backbone file")
    net = DomainNet(DomainNetConfig(**payload["config"]))
    net.load_state_dict(payload["state_dict"])
    return DomainBackbone(net, payload["data_hash"], device=device, loaded_from_cache=True)


def _fit(
    net: DomainNet, x: Any, y: torch.Tensor | None, epochs: int, seed: int, device: torch.device
) -> None:
    """``x``: the images as stored (uint8 or float, [N, C, H, W], any array indexable by a row list, such as
    memory-mapped shards); each batch is gathered and converted on its own, so RAM holds one batch."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    steps_per_epoch = max(1, -(-len(x) // 64))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for idx in order.split(64):
            xb = _to_input(_as_float_images(x[idx.numpy()])).to(device)
            _, out = net(xb)
            loss = F.cross_entropy(out, y[idx].to(device)) if y is not None else F.mse_loss(out, xb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()


def train_domain_backbone(
    images_uint8: Any,
    labels: np.ndarray | None,
    data_hash: str,
    cache_dir: str | os.PathLike[str],
    seed: int = 0,
    epochs: int = 6,
    device: str | torch.device = "cpu",
    feature_dim: int = 64,
    width: int = 32,
) -> DomainBackbone:
    """Train (or reload from ``cache_dir/domain-<data_hash>.pt``) the domain backbone.

    ``images_uint8``: the real TRAINING split, [N, C, H, W] uint8 (float in [-1, 1] also accepted), an array
    or memory-mapped shards (``ShardedImages``: read one batch at a time, never copied whole);
    ``labels``: int class ids [N], or None for the autoencoder. On the CPU, deterministic given ``seed``
    (trained single-threaded, so independent of the core count); on CUDA, not guaranteed bit-for-bit.
    A cached file is reused when its data hash and settings match; otherwise the network is retrained and
    the file replaced. The returned backbone's ``loaded_from_cache`` says which happened.
    """
    if not data_hash or not all(c.isalnum() or c in "-_." for c in data_hash):
        raise ValueError(f"data_hash must be a non-empty file-name-safe string; got {data_hash!r}")
    x = images_uint8
    if len(x.shape) != 4:
        raise ValueError(f"images must be [N, C, H, W]; got shape {tuple(x.shape)}")
    if isinstance(x, np.ndarray | torch.Tensor) and str(x.dtype) not in ("uint8", "torch.uint8"):
        _as_float_images(x)  # an in-RAM float array: check its range now, before any training
    if labels is not None:
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if y.shape != (len(x),) or int(y.min()) < 0:
            raise ValueError("labels must be non-negative class ids, one per image")
        cfg = DomainNetConfig("classifier", x.shape[1], int(y.max()) + 1, feature_dim, width, seed, epochs)
    else:
        y = None
        cfg = DomainNetConfig("autoencoder", x.shape[1], 0, feature_dim, width, seed, epochs)

    path = cache_path(cache_dir, data_hash)
    if path.is_file():
        try:
            cached = load_domain_backbone(path, device=device)
        except (ValueError, RuntimeError, KeyError, TypeError):
            cached = None  # unreadable or from an older format: retrain below
        if cached is not None and cached.data_hash == data_hash and cached.config == cfg:
            return cached

    dev = torch.device(device)
    # One CPU thread while training: float reductions then do not depend on the machine's core count (same
    # seed -> same weights anywhere), and on shared cores two busy-waiting threads were ~10x slower. The
    # network is small enough that this costs little.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = _train(cfg, x, y, epochs, seed, dev)
    finally:
        torch.set_num_threads(threads)
    save_domain_net(net.cpu(), data_hash, path)
    return DomainBackbone(net, data_hash, device=device)


def _train(
    cfg: DomainNetConfig, x: Any, y: torch.Tensor | None, epochs: int, seed: int, dev: torch.device
) -> DomainNet:
    # A private CPU RNG scope: same seed -> same initial weights (built on the CPU, then moved), and the
    # caller's RNG state is untouched. Shuffling uses its own generator; nothing draws from a CUDA RNG.
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        net = DomainNet(cfg).to(dev)
        _fit(net, x, y, epochs, seed, dev)
    return net
