"""Raw image sources: the built-in digits, an image folder, an ``s3://`` prefix, a torchvision dataset.

Every source lands in ``<raw_dir>/`` as checksummed tar shards of the accepted files' original bytes
(``shards/raw-00000.tar``, see ``raw_shards``: DVC then tracks a handful of shards, not one entry per image),
``shards.json`` (each shard's sha256), ``manifest.parquet`` (accepted files: ``<class>/<file>`` name (class =
first-level subfolder; ``_unlabelled`` when the source has no labels), size, shape, mode, label, sha256, shard
and byte offset), ``rejects.parquet`` (rejected files with the reason) and ``skipped.parquet`` (hidden files
and folders, empty class folders: not data, but listed). A rejected file is never silently dropped: it is
listed, and ingestion fails when the rejected fraction exceeds a bound.

Validation (a full decode: the cost of ingestion) runs across all cores, one shard per task; each task
writes its own shard, so nothing but manifest rows comes back to this process and memory stays flat.

Symbolic links in a folder source are never followed out of it: a link to a file inside the folder is
read like that file; a link that leaves the folder, dangles or points at a folder is rejected with the
reason, and its target is never opened. Images over ``max_pixels`` are rejected from their header.

The new data is built in ``<raw_dir>.partial`` and swapped in only when complete, so an interrupted or
failed ingest leaves the previous raw data as it was.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .parallel import MIN_PARALLEL_ITEMS, ordered_map
from .raw_shards import IMAGES_PER_SHARD, ShardWriter, open_shard, read_index, shard_file, write_index
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
    "raw_image_bytes",
    "sha256_bytes",
    "validate_image",
]

MANIFEST_COLUMNS = [
    "file",
    "label",
    "size",
    "height",
    "width",
    "channels",
    "mode",
    "sha256",
    "shard",
    "offset",
]
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

        frame = pd.DataFrame(self.batch, columns=MANIFEST_COLUMNS).astype(
            {"offset": "int64", "size": "int64"}
        )
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)
        self.batch = []

    def close(self) -> None:
        if self.batch or self.writer is None:
            self._flush()
        self.writer.close()


# --- shards: each task validates one shard's worth of files and writes that shard ----------------------

# What a task returns: manifest rows, rejects, and the shard's shards.json entry (None: nothing accepted).
ShardResult = tuple[list[dict], list[dict[str, str]], dict[str, Any] | None]
# A file's bytes (plus its ImageInfo), or the reason it is rejected.
Checked = tuple[bytes, ImageInfo] | str


def _write_shard(staging: Path, index: int, items: Iterator[tuple[str, str, Checked]]) -> ShardResult:
    """Pack the accepted ``(source name, raw name, checked)`` items into shard ``index`` under ``staging``."""
    rows: list[dict] = []
    rejects: list[dict[str, str]] = []
    writer = None
    for source_name, name, checked in items:
        if isinstance(checked, str):
            rejects.append({"file": source_name, "reason": checked})
            continue
        data, info = checked
        writer = writer or ShardWriter(staging / shard_file(index))
        offset = writer.add(name, data)
        rows.append(
            {
                "file": name,
                "label": name.split("/")[0],
                "size": len(data),
                "height": info.height,
                "width": info.width,
                "channels": info.channels,
                "mode": info.mode,
                "sha256": sha256_bytes(data),
                "shard": shard_file(index),
                "offset": offset,
            }
        )
    entry = None if writer is None else {"file": shard_file(index), **writer.close()}
    return rows, rejects, entry


def _run_shards(
    staging: Path,
    task: Callable[[tuple[int, Any]], ShardResult],
    groups: Sequence[Any],
    total: int,
    rejects: list[dict[str, str]],
    progress: bool,
) -> _Manifest:
    """Run ``task`` over the shard ``groups`` (in parallel for a large source), collecting the results."""
    from tqdm.auto import tqdm

    manifest, shards = _Manifest(staging / "manifest.parquet"), []
    workers = 1 if total < MIN_PARALLEL_ITEMS else None
    bar = tqdm(total=total, desc="validate", unit="img", disable=not progress)
    tasks = list(enumerate(groups))
    for rows, bad, entry in ordered_map(task, tasks, workers=workers, chunksize=1, min_items=2):
        for row in rows:
            manifest.add(row)
        rejects.extend(bad)
        shards += [entry] if entry else []
        bar.update(len(rows) + len(bad))
    bar.close()
    write_index(staging, shards)
    return manifest


def _chunks(items: Sequence, size: int) -> list:
    return [items[i : i + size] for i in range(0, len(items), size)]


# --- sources --------------------------------------------------------------------------------------------


def _walk(folder: Path) -> tuple[list[str], list[dict[str, str]], list[dict[str, str]]]:
    """(relative names of files and file links to classify, folders refused as rejects, skipped entries).

    Strings and ``scandir`` entries, not Paths: the listing of 1M files stays a few seconds. A link to a
    folder is refused, never entered. Hidden entries (``.git``, ``.DS_Store``, ``.ipynb_checkpoints``) are
    skipped once each, not descended into. A folder that cannot be listed is a reject, not a silent hole.
    """
    files: list[str] = []
    refused: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    top_folders: list[str] = []

    def visit(path: str, prefix: str) -> None:
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            refused.append({"file": prefix, "reason": f"cannot list folder: {exc.strerror}"})
            return
        for e in entries:
            rel = prefix + e.name
            if e.is_dir():  # follows links, so a link to a folder lands here
                if e.name.startswith("."):
                    skipped.append({"file": rel + "/", "reason": "hidden folder"})
                elif e.is_symlink():
                    refused.append(
                        {"file": rel, "reason": "symbolic link to a folder: links are not followed"}
                    )
                else:
                    top_folders.extend([e.name] if not prefix else [])
                    visit(e.path, rel + "/")
            elif e.name.startswith("."):
                skipped.append({"file": rel, "reason": "hidden file"})
            else:
                files.append(rel)

    visit(str(folder), "")
    # A class folder with nothing to ingest would silently vanish from the classes: say so.
    used = {f.split("/")[0] for f in files} | {r["file"].split("/")[0] for r in refused}
    for name in top_folders:
        if name not in used:
            skipped.append({"file": name + "/", "reason": "empty class folder: no files to ingest"})
    return files, refused, sorted(skipped, key=lambda r: r["file"])


# O_NOFOLLOW: a link is refused by the OS (then checked by hand); O_NONBLOCK: opening a FIFO never hangs.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _read_inside(path: str, root: str) -> bytes | str:
    """The bytes of ``path``, or the reason it is refused: a link must resolve to a file inside ``root``.

    One open and one ``fstat`` per file (no ``lstat`` first: on small images that was a tenth of ingestion's
    cost). The open refuses links (O_NOFOLLOW); a link's target is then resolved and checked, and opened
    with O_NOFOLLOW too, so a link swapped in between the check and the read is refused by the OS rather than
    followed. Only regular files are read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return f"cannot open: {exc.strerror}"
        target = os.path.realpath(path)
        if not os.path.exists(target):
            return "broken symbolic link: its target does not exist"
        if os.path.commonpath([target, root]) != root:
            return "symbolic link to a file outside the source folder: not followed"
        if not os.path.isfile(target):
            return "symbolic link to something that is not a regular file"
        try:
            fd = os.open(target, _OPEN_FLAGS)
        except OSError as exc2:
            return f"cannot open: {exc2.strerror}"
    try:
        size = os.fstat(fd)
        if not stat.S_ISREG(size.st_mode):
            return "not a regular file"
        chunks = []
        while chunk := os.read(fd, max(size.st_size, 1 << 16)):  # until EOF: the file may have grown
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_file(source: str, root: str, max_pixels: int, rel_name: str) -> Checked:
    """One source file's bytes and image info, or the reason it is rejected."""
    data = _read_inside(os.path.join(source, rel_name), root)
    if isinstance(data, str):
        return data
    info, reason = reject_reason(rel_name, data, max_pixels)
    return str(reason) if info is None else (data, info)


def _raw_name(rel_name: str) -> str:
    """Its name in the raw data: the source path, under ``_unlabelled/`` when it has no class folder."""
    return rel_name if "/" in rel_name else f"{UNLABELLED}/{rel_name}"


def _folder_shard(
    source: str, root: str, staging: Path, max_pixels: int, task: tuple[int, list[str]]
) -> ShardResult:
    index, names = task
    checked = ((n, _raw_name(n), _check_file(source, root, max_pixels, n)) for n in names)
    return _write_shard(staging, index, checked)


def ingest_folder(
    source: Path,
    raw_dir: Path,
    max_reject_fraction: float = 0.05,
    progress: bool = False,
    *,
    describe: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    images_per_shard: int = IMAGES_PER_SHARD,
) -> IngestReport:
    """Validate every file of an image folder (class = first-level subfolder) into ``raw_dir``'s shards.

    Accepted files keep their path below the class folder as their name in the shards (so equal names in
    different subfolders never collide); rejects are listed with the reason, skipped entries (hidden, empty
    class folders) too. Manifest, rejects and skipped tables are written even when the run fails, so the
    user sees exactly which files were wrong.
    """
    source, raw_dir = Path(source), Path(raw_dir)
    describe = describe or str(source)
    if not source.is_dir():
        raise IngestError(f"image folder {describe} does not exist")
    staging = _fresh_staging(raw_dir)
    files, rejects, skipped = _walk(source)
    # Shards follow the order of the names in the raw data, so the manifest comes out sorted by name.
    names = sorted(files, key=_raw_name)
    task = partial(_folder_shard, str(source), str(source.resolve()), staging, max_pixels)
    manifest = _run_shards(staging, task, _chunks(names, images_per_shard), len(names), rejects, progress)
    rejects.sort(key=lambda r: r["file"])
    return _finish(staging, raw_dir, manifest, rejects, max_reject_fraction, describe, skipped)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _array_shard(staging: Path, task: tuple[int, list[tuple[str, np.ndarray]]]) -> ShardResult:
    index, items = task
    checked = (
        (name, name, (data, validate_image(data))) for name, data in ((n, _png(im)) for n, im in items)
    )
    return _write_shard(staging, index, checked)


def ingest_arrays(
    images: np.ndarray,
    labels: np.ndarray | None,
    raw_dir: Path,
    class_names: list[str] | None = None,
    progress: bool = False,
    images_per_shard: int = IMAGES_PER_SHARD,
) -> IngestReport:
    """Ingest an in-memory uint8 array source (HxW or HxWxC per image) as PNGs, through the same validation.

    Image ``i`` is named ``<class>/<i:06d>.png``.
    """
    raw_dir = Path(raw_dir)
    staging = _fresh_staging(raw_dir)
    classes = (
        [UNLABELLED] * len(images)
        if labels is None
        else [(class_names[int(v)] if class_names else str(int(v))) for v in labels]
    )
    named = sorted((f"{c}/{i:06d}.png", i) for i, c in enumerate(classes))
    groups = [[(n, images[i]) for n, i in chunk] for chunk in _chunks(named, images_per_shard)]
    manifest = _run_shards(staging, partial(_array_shard, staging), groups, len(named), [], progress)
    return _finish(staging, raw_dir, manifest, [], 0.0, "arrays")


def raw_image_bytes(
    raw_dir: Path, rows: Sequence[int] | None = None, verify: bool = True
) -> Iterator[tuple[str, bytes]]:
    """``(name, original bytes)`` of the raw images at manifest ``rows`` (default: all, in name order), read
    from the shards, each checked against its sha256 in ``shards.json`` first (``verify=False``: read only
    the requested bytes, for a preview)."""
    import pyarrow.parquet as pq

    raw_dir = Path(raw_dir)
    table = pq.ParquetFile(raw_dir / "manifest.parquet").read(columns=["file", "shard", "offset", "size"])
    # One-row slices, not Table.take: that loads pyarrow.compute (and pandas), a second on a no-change run.
    picked = table.to_pylist() if rows is None else [table.slice(r, 1).to_pylist()[0] for r in rows]
    index, opened = read_index(raw_dir), {}
    try:
        for row in picked:
            start, end = row["offset"], row["offset"] + row["size"]
            if not verify:
                with open(raw_dir / row["shard"], "rb") as fh:
                    yield row["file"], os.pread(fh.fileno(), row["size"], start)
                continue
            if row["shard"] not in opened:
                opened[row["shard"]] = open_shard(raw_dir, index[row["shard"]])
            yield row["file"], opened[row["shard"]][start:end]
    finally:
        for mm in opened.values():
            mm.close()


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
    images_per_shard: int = IMAGES_PER_SHARD,
) -> IngestReport:
    """Dispatch on the source string: ``digits``, ``torchvision:<NAME>``, ``s3://bucket/prefix``, or a folder.

    ``download_root``: where torchvision datasets are read from (and downloaded to, with ``allow_download``).
    ``endpoint_url``: an S3-compatible server for ``s3://`` sources (else boto3's default chain).
    ``max_pixels``: images with more pixels are rejected from their header, before decoding.
    ``images_per_shard``: how many images one raw shard holds (see ``raw_shards``).
    """
    raw_dir = Path(raw_dir)
    if not 0.0 <= max_reject_fraction <= 1.0:
        raise IngestError(f"max_reject_fraction must be in [0, 1], got {max_reject_fraction}")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise IngestError(f"ingest.max_pixels must be a whole number >= 1, got {max_pixels!r}")
    if isinstance(images_per_shard, bool) or not isinstance(images_per_shard, int) or images_per_shard < 1:
        raise IngestError(f"ingest.images_per_shard must be a whole number >= 1, got {images_per_shard!r}")
    shards = {"images_per_shard": images_per_shard}
    if source == "digits":
        images, labels = digits_images()
        return ingest_arrays(images, labels, raw_dir, progress=progress, **shards)
    if source.startswith("torchvision:"):
        from .torchvision_source import torchvision_arrays

        root = Path(download_root) if download_root else default_download_root(raw_dir)
        images, labels, names = torchvision_arrays(source.split(":", 1)[1], root, allow_download)
        return ingest_arrays(images, labels, raw_dir, class_names=names, progress=progress, **shards)
    if source.startswith("s3://"):
        from .s3_source import download_prefix

        download = raw_dir.with_name(raw_dir.name + ".download")
        try:
            local = download_prefix(source, download, progress=progress, endpoint_url=endpoint_url)
            return ingest_folder(
                local,
                raw_dir,
                max_reject_fraction,
                progress,
                describe=source,
                max_pixels=max_pixels,
                **shards,
            )
        finally:
            shutil.rmtree(download, ignore_errors=True)  # the accepted files are in raw_dir now
    return ingest_folder(
        Path(source), raw_dir, max_reject_fraction, progress, max_pixels=max_pixels, **shards
    )
