"""Raw image sources and per-file validation.

Every source lands as ``<raw_dir>/<class>/<file>.png`` (class = subfolder; ``_unlabelled`` when the source
has no labels) plus ``manifest.parquet`` (accepted files) and ``rejects.parquet`` (rejected files with the
reason). A rejected file is never silently dropped: it is listed, and ingestion fails when the rejected
fraction exceeds a bound.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
UNLABELLED = "_unlabelled"
ACCEPTED_MODES = {"L", "RGB", "RGBA", "P", "I;16", "LA"}


class IngestError(RuntimeError):
    """Too many files were rejected, or the source is unusable; the rejects table says which and why."""


@dataclass
class IngestReport:
    raw_dir: Path
    accepted: int
    rejected: int
    classes: dict[str, int]
    rejects: list[dict[str, str]]

    @property
    def reject_fraction(self) -> float:
        total = self.accepted + self.rejected
        return self.rejected / total if total else 0.0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate_image(data: bytes) -> tuple[tuple[int, ...], str]:
    """Decode fully (``load()`` catches truncation that ``verify()`` alone misses); return (shape, mode)."""
    from PIL import Image

    if not data:
        raise ValueError("zero-size file")
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        if im.mode not in ACCEPTED_MODES:
            raise ValueError(f"unsupported image mode {im.mode}")
        if min(im.size) < 4:
            raise ValueError(f"image too small: {im.size}")
        arr = np.asarray(im)
    return arr.shape, im.mode


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: 1797 real 8x8 handwritten digits shipped inside the package (no download)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)  # 0..16 -> 0..255
    return images, d.target.astype(np.int64)


def write_array_images(raw_dir: Path, images: np.ndarray, labels: Iterable[str]) -> None:
    """Write an array source (digits, a torchvision set) as PNG files, class = subfolder."""
    from PIL import Image

    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        out = raw_dir / str(label)
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(out / f"{i:06d}.png", optimize=False)


def _files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def ingest_folder(source: Path, raw_dir: Path, max_reject_fraction: float = 0.05, progress: bool = False) -> IngestReport:
    """Validate every file of an image folder (class = first-level subfolder) into ``raw_dir``.

    Accepted files are copied; rejects are listed with the reason. Manifest and rejects tables are written
    even when the run fails, so the user sees exactly which files were wrong.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    source, raw_dir = Path(source), Path(raw_dir)
    if not source.is_dir():
        raise IngestError(f"image folder {source} does not exist")
    staging = raw_dir.with_name(raw_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rows, rejects = [], []
    files = _files_of(source)
    for path in tqdm(files, desc="validate", unit="img", disable=not progress):
        rel = path.relative_to(source)
        label = rel.parts[0] if len(rel.parts) > 1 else UNLABELLED
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            rejects.append({"file": str(rel), "reason": f"not an image file ({path.suffix or 'no suffix'})"})
            continue
        data = path.read_bytes()
        try:
            shape, mode = validate_image(data)
        except Exception as exc:  # PIL raises many types for corrupt data; the reason is what matters
            rejects.append({"file": str(rel), "reason": f"{type(exc).__name__}: {exc}"})
            continue
        dest = staging / label / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        rows.append(
            {"file": f"{label}/{path.name}", "label": label, "size": len(data), "height": shape[0], "width": shape[1],
             "mode": mode, "sha256": sha256_bytes(data)}
        )
    return _finish(staging, raw_dir, rows, rejects, max_reject_fraction, str(source))


def ingest_arrays(images: np.ndarray, labels: np.ndarray | None, raw_dir: Path, class_names: list[str] | None = None) -> IngestReport:
    """Ingest an in-memory uint8 array source (HxW or HxWxC per image) through the same validation."""
    staging = Path(raw_dir).with_name(Path(raw_dir).name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names = [UNLABELLED] * len(images) if labels is None else [
        (class_names[int(v)] if class_names else str(int(v))) for v in labels
    ]
    write_array_images(staging, images, names)
    rows = []
    for path in _files_of(staging):
        data = path.read_bytes()
        shape, mode = validate_image(data)
        rows.append({"file": f"{path.parent.name}/{path.name}", "label": path.parent.name, "size": len(data),
                     "height": shape[0], "width": shape[1], "mode": mode, "sha256": sha256_bytes(data)})
    return _finish(staging, Path(raw_dir), rows, [], 0.0, "arrays")


def _finish(staging: Path, raw_dir: Path, rows: list[dict], rejects: list[dict], max_frac: float, source: str) -> IngestReport:
    import pandas as pd

    classes: dict[str, int] = {}
    for r in rows:
        classes[r["label"]] = classes.get(r["label"], 0) + 1
    pd.DataFrame(rows, columns=["file", "label", "size", "height", "width", "mode", "sha256"]).to_parquet(
        staging / "manifest.parquet", index=False
    )
    pd.DataFrame(rejects, columns=["file", "reason"]).to_parquet(staging / "rejects.parquet", index=False)
    report = IngestReport(raw_dir, len(rows), len(rejects), dict(sorted(classes.items())), rejects)
    if not rows:
        raise IngestError(f"no valid images in {source} ({len(rejects)} rejected); see {staging / 'rejects.parquet'}")
    if report.reject_fraction > max_frac:
        listing = "\n".join(f"  {r['file']}: {r['reason']}" for r in rejects[:20])
        raise IngestError(
            f"{len(rejects)} of {len(rows) + len(rejects)} files in {source} were rejected "
            f"({report.reject_fraction:.1%} > allowed {max_frac:.1%}); the previous raw data is kept. "
            f"Rejects table: {staging / 'rejects.parquet'}\n{listing}"
        )
    # Swap in the new raw data only once it is complete: an interrupted or failed ingest keeps the old one.
    old = raw_dir.with_name(raw_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if raw_dir.exists():
        raw_dir.rename(old)
    staging.rename(raw_dir)
    shutil.rmtree(old, ignore_errors=True)
    return report


def ingest_source(
    source: str, raw_dir: Path, *, max_reject_fraction: float = 0.05, allow_download: bool = False, progress: bool = False
) -> IngestReport:
    """Dispatch on the source string: ``digits``, ``torchvision:<NAME>``, ``s3://bucket/prefix``, or a folder."""
    raw_dir = Path(raw_dir)
    if source == "digits":
        images, labels = digits_images()
        return ingest_arrays(images, labels, raw_dir)
    if source.startswith("torchvision:"):
        from .torchvision_source import torchvision_arrays

        images, labels, names = torchvision_arrays(source.split(":", 1)[1], raw_dir.parent / ".torchvision", allow_download)
        return ingest_arrays(images, labels, raw_dir, class_names=names)
    if source.startswith("s3://"):
        from .s3_source import download_prefix

        local = download_prefix(source, raw_dir.with_name(raw_dir.name + ".download"), progress=progress)
        return ingest_folder(local, raw_dir, max_reject_fraction, progress)
    return ingest_folder(Path(source), raw_dir, max_reject_fraction, progress)
