"""Raw image sources: the built-in digits, an image folder, an ``s3://`` prefix, a torchvision dataset.

Every source lands as ``<raw_dir>/<class>/<file>`` (class = first-level subfolder; ``_unlabelled`` when the
source has no labels) plus ``manifest.parquet`` (accepted files: size, shape, mode, label, sha256),
``rejects.parquet`` (rejected files with the reason) and ``skipped.parquet`` (hidden files and folders,
empty class folders: not data, but listed). A rejected file is never silently dropped: it is listed, and
ingestion fails when the rejected fraction exceeds a bound.

Symbolic links in a folder source are never followed out of it: a link to a file inside the folder is
read like that file; a link that leaves the folder, dangles or points at a folder is rejected with the
reason, and its target is never opened. Images over ``max_pixels`` are rejected from their header.

The new data is built in ``<raw_dir>.partial`` and swapped in only when complete, so an interrupted or
failed ingest leaves the previous raw data as it was.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from .parallel import ordered_map
from .shards import UNLABELLED
from .validate import (
    ACCEPTED_MODES,
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageInfo,
    reject_reason,
    sha256_bytes,
    validate_image,
)

__all__ = [
    "ACCEPTED_MODES",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_SUFFIXES",
    "UNLABELLED",
    "IngestError",
    "IngestReport",
    "digits_images",
    "ingest_arrays",
    "ingest_folder",
    "ingest_source",
    "sha256_bytes",
    "validate_image",
]

MANIFEST_COLUMNS = ["file", "label", "size", "height", "width", "channels", "mode", "sha256"]
REJECT_COLUMNS = ["file", "reason"]
SKIPPED_COLUMNS = ["file", "reason"]


class IngestError(RuntimeError):
    """Too many files were rejected, or the source is unusable; the message says which and why."""


@dataclass
class IngestReport:
    raw_dir: Path
    accepted: int
    rejected: int
    classes: dict[str, int]
    rejects: list[dict[str, str]]
    skipped: list[dict[str, str]] = field(default_factory=list)  # hidden entries, empty class folders

    @property
    def reject_fraction(self) -> float:
        total = self.accepted + self.rejected
        return self.rejected / total if total else 0.0


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: 1797 real 8x8 handwritten digits shipped inside the package (no download)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(d.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)  # 0..16 -> 0..255
    return images, d.target.astype(np.int64)


def write_array_images(
    raw_dir: Path, images: np.ndarray, labels: Iterable[str], progress: bool = False
) -> None:
    """Write an array source (digits, a torchvision set) as PNG files, class = subfolder."""
    from PIL import Image
    from tqdm.auto import tqdm

    pairs = zip(images, labels, strict=True)
    for i, (img, label) in enumerate(
        tqdm(pairs, total=len(images), desc="write", unit="img", disable=not progress)
    ):
        out = raw_dir / str(label)
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(img)).save(out / f"{i:06d}.png", optimize=False)


# --- staging: build next to raw_dir, swap in when complete ---------------------------------------------


def _staging(raw_dir: Path) -> Path:
    return raw_dir.with_name(raw_dir.name + ".partial")


def _old(raw_dir: Path) -> Path:
    return raw_dir.with_name(raw_dir.name + ".old")


def recover(raw_dir: Path) -> None:
    """Undo a swap that died between its two renames: the previous data sits in ``<raw_dir>.old``."""
    if not raw_dir.exists() and _old(raw_dir).is_dir():
        _old(raw_dir).rename(raw_dir)


def _fresh_staging(raw_dir: Path) -> Path:
    recover(raw_dir)
    staging = _staging(raw_dir)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _swap_in(staging: Path, raw_dir: Path) -> None:
    old = _old(raw_dir)
    shutil.rmtree(old, ignore_errors=True)
    if raw_dir.exists():
        raw_dir.rename(old)
    staging.rename(raw_dir)
    shutil.rmtree(old, ignore_errors=True)


def _row(file: str, label: str, data: bytes, info: ImageInfo) -> dict:
    return {
        "file": file,
        "label": label,
        "size": len(data),
        "height": info.height,
        "width": info.width,
        "channels": info.channels,
        "mode": info.mode,
        "sha256": sha256_bytes(data),
    }


class _Manifest:
    """Accepted rows, written to ``manifest.parquet`` in batches: memory stays flat in the file count."""

    BATCH = 4096

    def __init__(self, path: Path) -> None:
        self.path, self.batch, self.writer = path, [], None
        self.count, self.classes = 0, {}

    def add(self, row: dict) -> None:
        self.batch.append(row)
        self.count += 1
        self.classes[row["label"]] = self.classes.get(row["label"], 0) + 1
        if len(self.batch) >= self.BATCH:
            self._flush()

    def _flush(self) -> None:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(pd.DataFrame(self.batch, columns=MANIFEST_COLUMNS), preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)
        self.batch = []

    def close(self) -> None:
        if self.batch or self.writer is None:
            self._flush()
        self.writer.close()


# --- sources --------------------------------------------------------------------------------------------


def _walk(folder: Path) -> tuple[list[Path], list[dict[str, str]], list[dict[str, str]]]:
    """(regular files and symlinks to classify, links refused as rejects, skipped entries) under ``folder``.

    ``os.walk`` with ``followlinks=False``: a link to a folder is listed, never entered. Hidden entries
    (``.git``, ``.DS_Store``, ``.ipynb_checkpoints``) are skipped once each, not descended into.
    """
    files: list[Path] = []
    refused: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames):
            path, rel = here / name, (here / name).relative_to(folder).as_posix()
            if name.startswith("."):
                skipped.append({"file": rel + "/", "reason": "hidden folder"})
            elif path.is_symlink():
                refused.append({"file": rel, "reason": "symbolic link to a folder: links are not followed"})
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
        for name in sorted(filenames):
            path = here / name
            if name.startswith("."):
                skipped.append({"file": path.relative_to(folder).as_posix(), "reason": "hidden file"})
            else:
                files.append(path)
    # A class folder with nothing to ingest would silently vanish from the classes: say so.
    used = {Path(p).relative_to(folder).parts[0] for p in files} | {r["file"].split("/")[0] for r in refused}
    for entry in sorted(folder.iterdir()):
        if (
            entry.is_dir()
            and not entry.is_symlink()
            and not entry.name.startswith(".")
            and entry.name not in used
        ):
            skipped.append({"file": entry.name + "/", "reason": "empty class folder: no files to ingest"})
    return sorted(files), refused, sorted(skipped, key=lambda r: r["file"])


def _read_inside(path: Path, root: Path) -> bytes | str:
    """The bytes of ``path``, or the reason it is refused: a link must resolve to a file inside ``root``.

    Opened with O_NOFOLLOW after resolving, so a link swapped in between the check and the read is refused
    by the OS rather than followed.
    """
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            return "broken symbolic link: its target does not exist"
        if not target.is_relative_to(root):
            return "symbolic link to a file outside the source folder: not followed"
        if not target.is_file():
            return "symbolic link to something that is not a regular file"
        path = target
    elif not path.is_file():
        return "not a regular file"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return f"cannot open: {exc.strerror}"
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _ingest_file(source: Path, root: Path, staging: Path, max_pixels: int | None, rel_name: str) -> dict | str:
    """Validate one file and copy it into ``staging``: its manifest row, or the reason it was rejected."""
    rel = Path(rel_name)
    data = _read_inside(source / rel, root)
    if isinstance(data, str):
        return data
    info, reason = reject_reason(rel_name, data, max_pixels)
    if info is None:
        return str(reason)
    dest_rel = rel if len(rel.parts) > 1 else Path(UNLABELLED) / rel
    dest = staging / dest_rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return _row(dest_rel.as_posix(), dest_rel.parts[0], data, info)


def _files_of(folder: Path) -> list[Path]:
    """Every file under ``folder`` except hidden ones (and those in hidden folders: .git, .ipynb_checkpoints)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def ingest_folder(
    source: Path,
    raw_dir: Path,
    max_reject_fraction: float = 0.05,
    progress: bool = False,
    *,
    describe: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> IngestReport:
    """Validate every file of an image folder (class = first-level subfolder) into ``raw_dir``.

    Accepted files are copied, keeping their path below the class folder (so equal names in different
    subfolders never collide); rejects are listed with the reason, skipped entries (hidden, empty class
    folders) too. Manifest, rejects and skipped tables are written even when the run fails, so the user sees
    exactly which files were wrong.
    """
    from tqdm.auto import tqdm

    source, raw_dir = Path(source), Path(raw_dir)
    describe = describe or str(source)
    if not source.is_dir():
        raise IngestError(f"image folder {describe} does not exist")
    root = source.resolve()
    staging = _fresh_staging(raw_dir)
    files, rejects, skipped = _walk(source)
    names = [p.relative_to(source).as_posix() for p in files]
    manifest = _Manifest(staging / "manifest.parquet")
    checked = ordered_map(partial(_ingest_file, source, root, staging, max_pixels), names, chunksize=256)
    results = tqdm(zip(names, checked, strict=True), total=len(names), desc="validate", unit="img", disable=not progress)
    for rel, result in results:
        if isinstance(result, str):
            rejects.append({"file": rel, "reason": result})
        else:
            manifest.add(result)
    rejects.sort(key=lambda r: r["file"])
    return _finish(staging, raw_dir, manifest, rejects, max_reject_fraction, describe, skipped)


def ingest_arrays(
    images: np.ndarray,
    labels: np.ndarray | None,
    raw_dir: Path,
    class_names: list[str] | None = None,
    progress: bool = False,
) -> IngestReport:
    """Ingest an in-memory uint8 array source (HxW or HxWxC per image) through the same validation."""
    raw_dir = Path(raw_dir)
    staging = _fresh_staging(raw_dir)
    names = (
        [UNLABELLED] * len(images)
        if labels is None
        else [(class_names[int(v)] if class_names else str(int(v))) for v in labels]
    )
    write_array_images(staging, images, names, progress)
    manifest = _Manifest(staging / "manifest.parquet")
    for path in _files_of(staging):
        data = path.read_bytes()
        manifest.add(_row(path.relative_to(staging).as_posix(), path.parent.name, data, validate_image(data)))
    return _finish(staging, raw_dir, manifest, [], 0.0, "arrays")


def _finish(
    staging: Path,
    raw_dir: Path,
    manifest: _Manifest,
    rejects: list[dict],
    max_frac: float,
    source: str,
    skipped: list[dict] | None = None,
) -> IngestReport:
    import pandas as pd

    manifest.close()
    pd.DataFrame(rejects, columns=REJECT_COLUMNS).to_parquet(staging / "rejects.parquet", index=False)
    skipped = skipped or []
    pd.DataFrame(skipped, columns=SKIPPED_COLUMNS).to_parquet(staging / "skipped.parquet", index=False)
    classes = dict(sorted(manifest.classes.items()))
    report = IngestReport(raw_dir, manifest.count, len(rejects), classes, rejects, skipped)
    listing = "\n".join(f"  {r['file']}: {r['reason']}" for r in rejects[:20])
    more = f"\n  ... and {len(rejects) - 20} more" if len(rejects) > 20 else ""
    if not manifest.count:
        raise IngestError(
            f"no valid images in {source} ({len(rejects)} rejected); the previous raw data is kept. "
            f"Rejects table: {staging / 'rejects.parquet'}\n{listing}{more}"
        )
    if report.reject_fraction > max_frac:
        raise IngestError(
            f"{len(rejects)} of {manifest.count + len(rejects)} files in {source} were rejected "
            f"({report.reject_fraction:.1%} > allowed {max_frac:.1%}, ingest.max_reject_fraction); "
            f"the previous raw data is kept. Rejects table: {staging / 'rejects.parquet'}\n{listing}{more}"
        )
    _swap_in(staging, raw_dir)
    return report


def default_download_root(raw_dir: Path) -> Path:
    """``<workspace>/data/torchvision`` for ``<workspace>/data/raw/<name>``."""
    return Path(raw_dir).parent.parent / "torchvision"


def ingest_source(
    source: str,
    raw_dir: Path,
    *,
    max_reject_fraction: float = 0.05,
    allow_download: bool = False,
    progress: bool = False,
    download_root: Path | None = None,
    endpoint_url: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> IngestReport:
    """Dispatch on the source string: ``digits``, ``torchvision:<NAME>``, ``s3://bucket/prefix``, or a folder.

    ``download_root``: where torchvision datasets are read from (and downloaded to, with ``allow_download``).
    ``endpoint_url``: an S3-compatible server for ``s3://`` sources (else boto3's default chain).
    ``max_pixels``: images with more pixels are rejected from their header, before decoding.
    """
    raw_dir = Path(raw_dir)
    if not 0.0 <= max_reject_fraction <= 1.0:
        raise IngestError(f"max_reject_fraction must be in [0, 1], got {max_reject_fraction}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise IngestError(f"ingest.max_pixels must be a whole number >= 1, got {max_pixels!r}")
    if source == "digits":
        images, labels = digits_images()
        return ingest_arrays(images, labels, raw_dir, progress=progress)
    if source.startswith("torchvision:"):
        from .torchvision_source import torchvision_arrays

        root = Path(download_root) if download_root else default_download_root(raw_dir)
        images, labels, names = torchvision_arrays(source.split(":", 1)[1], root, allow_download)
        return ingest_arrays(images, labels, raw_dir, class_names=names, progress=progress)
    if source.startswith("s3://"):
        from .s3_source import download_prefix

        download = raw_dir.with_name(raw_dir.name + ".download")
        try:
            local = download_prefix(source, download, progress=progress, endpoint_url=endpoint_url)
            return ingest_folder(
                local, raw_dir, max_reject_fraction, progress, describe=source, max_pixels=max_pixels
            )
        finally:
            shutil.rmtree(download, ignore_errors=True)  # the accepted files are in raw_dir now
    return ingest_folder(Path(source), raw_dir, max_reject_fraction, progress, max_pixels=max_pixels)
