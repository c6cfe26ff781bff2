"""What a downstream service imports: pull a published generator, verify it, run it with ONNX Runtime.

Needs only numpy, onnxruntime, the standard library, boto3 (for ``s3://``, imported lazily) and pillow
(for PNGs, imported lazily): no torch, dagster or dvc anywhere on the import path.

    from ganlib.serving import pull, OnnxGenerator
    pulled = pull("s3://models/gan", "digits")          # latest; verified sha256 + size; cached
    gen = OnnxGenerator(pulled.path)                    # CUDA provider if really available, else CPU
    images = gen.generate(16, seed=0)                   # uint8 [16, H, W, C]

Latents are drawn with numpy (``default_rng(seed).standard_normal``), so a seed gives the same images on
every machine and provider up to float rounding, but not the same latents as ``torch.randn``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from . import pixels, viz
from .latent_paths import interpolation_path, slerp
from .store import (
    ChecksumError,
    ManifestError,
    ObjectNotFound,
    Store,
    StoreError,
    download_verified,
    latest_key,
    open_store,
    read_latest,
    read_manifest,
    sha256_file,
    validate_name,
)

__all__ = [
    "ChecksumError",
    "ManifestError",
    "OnnxGenerator",
    "ProviderError",
    "PulledModel",
    "StoreError",
    "default_cache_dir",
    "interpolation_path",
    "make_grid",
    "pull",
    "slerp",
    "to_png",
    "to_uint8",
]

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ProviderError(RuntimeError):
    """The caller demanded the GPU and ONNX Runtime is not really running on it."""


@dataclass(frozen=True)
class PulledModel:
    path: Path  # the verified generator.onnx in the local cache
    manifest: dict[str, Any]
    from_cache: bool  # True when a verified cached copy was reused

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("GAN_CACHE_DIR") or Path.home() / ".cache" / "gan-workflow")


def _matches(path: Path, manifest: dict[str, Any]) -> bool:
    if not path.is_file() or path.stat().st_size != manifest["size"]:
        return False
    return sha256_file(path) == (manifest["sha256"], manifest["size"])


def _temp_in(directory: Path, suffix: str) -> Path:
    """A unique temp file beside its final name (same filesystem, so os.replace is atomic)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".download-", suffix=suffix)
    os.close(fd)
    return Path(name)


def pull(
    uri: str | Path | Store,
    model: str,
    version: str = "latest",
    cache_dir: str | Path | None = None,
) -> PulledModel:
    """Resolve ``version`` (``latest`` reads latest.json), download generator.onnx into the cache and
    verify its sha256 and size against the manifest; through ``latest``, latest.json's sha256 must equal
    the manifest's too. The manifest must name the model and version of the key it was read from. A verified cached copy is reused without download;
    a download that does not verify raises ``ChecksumError`` and leaves nothing in the cache."""
    store = open_store(uri) if isinstance(uri, str | Path) else uri
    validate_name(model, "model")
    latest = None
    if version == "latest":
        latest = read_latest(store, model)
        if latest is None:
            raise ObjectNotFound(f"no published version of '{model}' at {store.uri}: latest.json is missing")
        version = latest["version"]
    manifest = read_manifest(store, model, version)  # bound to its key: names this model and version
    if latest is not None and (latest["sha256"], latest["size"]) != (manifest["sha256"], manifest["size"]):
        raise ChecksumError(
            f"{store.uri_for(latest_key(model))} says sha256 {latest['sha256']} / {latest['size']} bytes, "
            f"but the manifest of {model}/{version} says {manifest['sha256']} / {manifest['size']} bytes: "
            "one of them was changed after publishing; refusing it"
        )

    # One cache subtree per store, so two stores with the same model names never share files.
    store_id = hashlib.sha256(store.uri.encode()).hexdigest()[:16]
    target_dir = Path(cache_dir or default_cache_dir()) / store_id / model / version
    target = target_dir / "generator.onnx"
    if _matches(target, manifest):
        return PulledModel(target, manifest, from_cache=True)

    target_dir.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # a cached copy that failed verification is never served again
    tmp = _temp_in(target_dir, ".onnx")
    try:
        download_verified(store, manifest, tmp)  # raises ChecksumError; nothing reaches the cache
        os.replace(tmp, target)  # only verified bytes ever carry the final name
    finally:
        tmp.unlink(missing_ok=True)
    # A copy for humans and offline inspection; the store's manifest stays the authority.
    tmp_manifest = _temp_in(target_dir, ".json")
    tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(tmp_manifest, target_dir / "manifest.json")
    return PulledModel(target, manifest, from_cache=False)


# ------------------------------------------------------------------------------------------------ images
def to_uint8(images: np.ndarray) -> np.ndarray:
    """[N, C, H, W] floats in [-1, 1] -> uint8 [N, H, W, C]."""
    return pixels.to_uint8(images).transpose(0, 2, 3, 1)


make_grid = viz.grid_nhwc  # uint8 [N, H, W, C] -> one uint8 [H', W', C] image


def to_png(image: np.ndarray) -> bytes:
    """uint8 [H, W, C] (C = 1 or 3) -> PNG bytes."""
    import io

    from PIL import Image

    arr = image[:, :, 0] if image.shape[2] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ runtime
class OnnxGenerator:
    """An exported generator in an ONNX Runtime session.

    ``device``: ``auto`` (CUDA when ONNX Runtime offers it, else CPU), ``cpu``, or ``cuda`` (demand it).
    With ``device="cuda"`` or ``require_gpu=True`` a session that did not really get CUDA (missing
    onnxruntime-gpu, CUDA/cuDNN libraries, or a GPU) raises ``ProviderError`` instead of quietly using the
    CPU. ``provider`` is what the session really runs on, read back from ONNX Runtime.

    Session settings (measured by ``python -m bench --only inference`` on a 2-core machine shared with other
    work): sequential execution (the graph is a chain), all graph optimizations (the blocked NCHWc Conv
    kernels the export is shaped for), and ``threads`` intra-op threads: ``$GAN_ORT_THREADS``, else 1. One
    thread was within ~15% of ONNX Runtime's default (one per core) at batch 1 and 64 there; a service gets
    its parallelism from concurrent requests (and ``ganlib.batching``), and a container's CPU quota may be
    far below the host's core count that ONNX Runtime would size its pool by. For large batches on cores of
    your own, pass ``threads=0`` (one per core). With more than one thread, ``spin=False`` (the default; ONNX
    Runtime's is to spin) lets idle pool threads sleep instead of busy-waiting on cores others need: 20-40%
    faster at batch 64 on the shared machine, slower at batch 1.
    """

    @staticmethod
    def session_options(threads: int | None = None, spin: bool = False) -> ort.SessionOptions:
        """The ONNX Runtime settings ``OnnxGenerator`` uses (see its docstring); 0 threads = one per core."""
        if threads is None:
            env = os.environ.get("GAN_ORT_THREADS") or "1"
            if not env.isdigit():
                raise ValueError(f"GAN_ORT_THREADS must be a whole number of threads, got {env!r}")
            threads = int(env)
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = one per physical core), got {threads}")
        opts = ort.SessionOptions()
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        return opts

    def __init__(
        self,
        path: str | Path,
        *,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        require_gpu: bool = False,
        batch_size: int = 64,
        num_classes: int | None = None,
        threads: int | None = None,
        spin: bool = False,
    ) -> None:
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {device!r}")
        want_gpu = device == "cuda" or require_gpu
        if want_gpu and device == "cpu":
            raise ValueError("require_gpu=True contradicts device='cpu'")
        available = ort.get_available_providers()
        if device == "cpu":
            providers = [CPU]
        elif want_gpu or CUDA in available:
            providers = [CUDA, CPU]
        else:
            providers = [CPU]
        if want_gpu and CUDA not in available:
            raise ProviderError(
                f"the GPU was demanded but this onnxruntime offers only {available}: "
                "install onnxruntime-gpu matching the CUDA version"
            )
        self.path = Path(path)
        self.session = ort.InferenceSession(
            str(self.path), self.session_options(threads, spin), providers=providers
        )
        # ONNX Runtime falls back to CPU (with a log line) when CUDA fails to initialise: check what it did.
        self.providers: list[str] = self.session.get_providers()
        self.provider: str = self.providers[0]
        if want_gpu and self.provider != CUDA:
            raise ProviderError(
                f"the GPU was demanded but ONNX Runtime runs {self.path.name} on {self.providers}"
            )
        self.batch_size = batch_size

        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs = {i.name: i for i in self.session.get_inputs()}
        if "z" not in inputs:
            raise ValueError(f"{self.path}: no input named 'z' (inputs: {sorted(inputs)})")
        z_shape = inputs["z"].shape
        self.z_dim = int(z_shape[1]) if isinstance(z_shape[1], int) else int(self.metadata["z_dim"])
        self.conditional = "class_id" in inputs
        meta_classes = int(self.metadata.get("num_classes", 0))
        self.num_classes = num_classes if num_classes is not None else meta_classes
        if self.conditional and not self.num_classes:
            raise ValueError(
                f"{self.path} is class-conditional but no num_classes is known: pass num_classes="
            )
        if not self.conditional:
            self.num_classes = 0

    def __repr__(self) -> str:
        return f"OnnxGenerator({str(self.path)!r}, provider={self.provider!r}, z_dim={self.z_dim}, num_classes={self.num_classes})"

    def latents(self, n: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).standard_normal((n, self.z_dim), dtype=np.float32)

    def _class_ids(self, n: int, class_id: int | np.ndarray | list[int] | None) -> np.ndarray | None:
        if not self.conditional:
            if class_id is not None:
                raise ValueError("this generator is unconditional: class_id must be None")
            return None
        if class_id is None:
            return (np.arange(n) % self.num_classes).astype(np.int64)  # balanced
        ids = np.broadcast_to(np.asarray(class_id, dtype=np.int64), (n,)).copy()
        if ids.min() < 0 or ids.max() >= self.num_classes:
            raise ValueError(f"class_id must be in [0, {self.num_classes}), got {np.unique(ids).tolist()}")
        return ids

    def run(self, z: np.ndarray, class_id: np.ndarray | None = None) -> np.ndarray:
        """Raw output: float32 [N, C, H, W] in [-1, 1], computed in chunks of ``batch_size``."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {list(z.shape)}")
        ids = self._class_ids(len(z), class_id)
        outs = []
        for s in range(0, len(z), self.batch_size):
            feeds = {"z": z[s : s + self.batch_size]}
            if ids is not None:
                feeds["class_id"] = ids[s : s + self.batch_size]
            outs.append(self.session.run(["image"], feeds)[0])
        return np.concatenate(outs)

    def generate(
        self, n: int, seed: int = 0, class_id: int | np.ndarray | list[int] | None = None
    ) -> np.ndarray:
        """``n`` images as uint8 [N, H, W, C]; conditional models get balanced classes unless told."""
        return to_uint8(self.run(*self.inputs(n, seed, class_id)))

    def inputs(
        self, n: int, seed: int = 0, class_id: int | np.ndarray | list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The (checked) latents and class ids ``generate(n, seed, class_id)`` runs: a batcher can join
        several requests' inputs into one ``run`` and still give each request exactly its own images."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return self.latents(n, seed), self._class_ids(n, class_id)

    def interpolate(
        self,
        z0: np.ndarray,
        z1: np.ndarray,
        steps: int,
        spherical: bool = True,
        class_id: int | None = None,
    ) -> np.ndarray:
        """``steps`` images along the path from latent ``z0`` to ``z1`` (uint8 [steps, H, W, C]).
        Conditional models use ``class_id`` (default 0) for every step."""
        zs = interpolation_path(z0, z1, steps, spherical)
        if self.conditional and class_id is None:
            class_id = 0
        return to_uint8(self.run(zs, class_id))
