"""DVC's ``preprocess`` stage: raw image shards -> resized, split, uint8 shards + parquet index.

Run by ``dvc repro preprocess`` (see dvc.yaml), never called around DVC by the pipeline:
    python ganlib/data/preprocess.py --raw data/raw/digits --out data/processed --params params.yaml
Deterministic: the same raw images and params give byte-identical outputs (so DVC's hash is stable), however
the raw data is sharded. Streams, across all cores: one task per raw shard checks the shard's sha256, then
decodes and resizes its images into a reused buffer and writes them into the output shards, which are
allocated on disk up front, one ``pwrite`` per run of rows. No image passes through this process, and memory
stays flat in the number of images (a 1M-image set needs what a 20k one does).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyspng
import yaml

if TYPE_CHECKING:
    from PIL import Image

# The stage's code deps (dvc.yaml) are this file and the sibling modules below: all it runs.
if __package__:
    from .parallel import MIN_PARALLEL_ITEMS, ordered_map
    from .png_stream import read_ihdr
    from .raw_shards import ShardError, open_shard, read_index
    from .shards import SHARD_SIZE, UNLABELLED, create_shard, shard_names
else:  # run by path, as dvc.yaml does: the sibling files, i.e. the very copies DVC hashed
    from parallel import MIN_PARALLEL_ITEMS, ordered_map  # type: ignore[no-redef]
    from png_stream import read_ihdr  # type: ignore[no-redef]
    from raw_shards import ShardError, open_shard, read_index  # type: ignore[no-redef]
    from shards import SHARD_SIZE, UNLABELLED, create_shard, shard_names  # type: ignore[no-redef]


def load_params(path: Path) -> dict:
    p = (yaml.safe_load(path.read_text()) or {}).get("preprocess", {})
    known = {"resolution", "channels", "val_fraction", "split_seed", "background"}
    unknown = set(p) - known
    if unknown:
        raise SystemExit(f"{path}: unknown preprocess params {sorted(unknown)}; known: {sorted(known)}")
    params = {"resolution": 32, "channels": 1, "val_fraction": 0.2, "split_seed": 0, "background": 0, **p}
    if _rgb(params["background"]) is None:
        raise SystemExit(
            f"{path}: preprocess.background must be a grey level 0-255 or [r, g, b], got {params['background']!r}"
        )
    if params["channels"] not in (1, 3):
        raise SystemExit(f"{path}: preprocess.channels must be 1 or 3, got {params['channels']}")
    if not 0 < params["val_fraction"] < 1:
        raise SystemExit(f"{path}: preprocess.val_fraction must be in (0, 1), got {params['val_fraction']}")
    return params


def _rgb(background: object) -> tuple[int, int, int] | None:
    """A grey level or [r, g, b] as an RGB triple; None when it is neither."""
    values = background if isinstance(background, list | tuple) else [background] * 3
    ok = len(values) == 3 and all(type(v) is int and 0 <= v <= 255 for v in values)
    return (values[0], values[1], values[2]) if ok else None


def load_image(source: Path | bytes, resolution: int, channels: int, background: object = 0) -> np.ndarray:
    """One image file (a path or its bytes) as uint8 ``[C, resolution, resolution]``."""
    from PIL import Image

    data = source.read_bytes() if isinstance(source, Path) else source
    pixels = _libspng_decode(data) if _plain_png(data, channels) else None
    if pixels is None:
        im = _pil_decode(data, channels, background)
    elif pixels.shape[0] == pixels.shape[1] == resolution:
        return _channels_first(pixels)
    else:
        im = Image.fromarray(pixels)
    # Centre-crop to square, then resize with antialiasing (PIL's filters are antialiased). Either step
    # is skipped when it would return the same pixels (a square image, the target size).
    w, h = im.size
    s = min(w, h)
    if w != h:
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != resolution:
        im = im.resize((resolution, resolution), Image.Resampling.BICUBIC)
    return _channels_first(np.asarray(im, dtype=np.uint8))


def _plain_png(data: bytes, channels: int) -> bool:
    """A non-interlaced 8-bit grey (``channels`` 1) or RGB (3) PNG without a transparency chunk: decoded, its
    pixels are the output's with no conversion. (``tRNS`` anywhere in the bytes sends a file to PIL: at
    worst the slow way.)"""
    ihdr = read_ihdr(data)  # (width, height, bit depth, colour type, interlace)
    return ihdr is not None and ihdr[2:] == (8, 0 if channels == 1 else 2, 0) and b"tRNS" not in data


def _libspng_decode(data: bytes) -> np.ndarray | None:
    """libspng (pyspng, as stylegan2-ada's loader) decodes a plain PNG in half PIL's time, to the same pixels;
    ``None`` for a file it refuses that PIL reads (an unknown critical chunk): ingestion accepted what PIL
    accepts, so PIL decodes it."""
    try:
        return pyspng.load(data)
    except RuntimeError:
        return None


def _pil_decode(data: bytes, channels: int, background: object) -> Image.Image:
    """Any image PIL opens, in mode L or RGB, transparent pixels composited onto ``background``."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
            # Composite onto the background: convert() alone drops alpha, so transparent pixels would show
            # whatever colour they happen to store.
            rgba = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (*_rgb(background), 255)), rgba)
        mode = "L" if channels == 1 else "RGB"
        im.load()
        return im if im.mode == mode else im.convert(mode)  # convert() copies even when the mode is right


def _channels_first(pixels: np.ndarray) -> np.ndarray:
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation rows: the same fraction of every class, chosen by ``seed``."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        is_val[idx[: max(1, round(len(idx) * val_fraction))]] = True
    return is_val


def _read_manifest(raw: Path, columns: list[str], rows=None):
    """Columns of the manifest as an Arrow table (compact strings: no Python object per row), optionally
    taking ``rows``. Read column by column when needed, so the long strings (names, hashes) are in memory
    only while used, not through the whole stage."""
    import pyarrow.parquet as pq

    # ParquetFile, not read_table: read_table goes through pyarrow.dataset, whose import (pandas with it)
    # costs more than reading 100k rows.
    table = pq.ParquetFile(raw / "manifest.parquet").read(columns=columns)
    return table if rows is None else table.take(rows)


SPLITS = ("train", "val")


def _shard_tasks(manifest, is_val: np.ndarray, position: np.ndarray, index: dict[str, dict]) -> list[tuple]:
    """One task per raw shard: its ``shards.json`` entry and, for each of its images, where its bytes are
    and where its pixels go (split, position in the split)."""
    import pyarrow.compute as pc

    codes = pc.dictionary_encode(manifest["shard"]).combine_chunks()
    shard_of = codes.indices.to_numpy(zero_copy_only=False)
    offsets = manifest["offset"].to_numpy()
    sizes = manifest["size"].to_numpy()
    order = np.argsort(shard_of, kind="stable")
    bounds = np.cumsum(np.bincount(shard_of, minlength=len(codes.dictionary)))
    tasks = []
    for k, name in enumerate(codes.dictionary.to_pylist()):
        if name not in index:
            raise ShardError(f"the manifest names raw shard {name}, which shards.json does not list")
        rows = order[(bounds[k - 1] if k else 0) : bounds[k]]
        tasks.append((index[name], offsets[rows], sizes[rows], is_val[rows].astype(np.int8), position[rows]))
    return sorted(tasks, key=lambda t: t[0]["file"])


def _preprocess_shard(
    raw: str, out: str, resolution: int, channels: int, background: object, task: tuple
) -> int:
    """Check one raw shard, decode and resize its images into a buffer, then write each run of consecutive
    output rows with one ``pwrite`` (a raw shard's images are a run of names, so of rows in each split)."""
    entry, offsets, sizes, splits, positions = task
    pixels = _buffer((len(offsets), channels, resolution, resolution))
    shard = open_shard(Path(raw), entry)
    try:
        for i, (offset, size) in enumerate(zip(offsets, sizes, strict=True)):
            pixels[i] = load_image(shard[offset : offset + size], resolution, channels, background)
    finally:
        shard.close()
    # Runs of rows that are consecutive in one split and one output shard (the splits interleave).
    order = np.lexsort((positions, splits))
    split_of, pos_of = splits[order].astype(np.int64), positions[order]
    new_run = (np.diff(split_of) != 0) | (np.diff(pos_of) != 1) | (np.diff(pos_of // SHARD_SIZE) != 0)
    for run in np.split(order, np.flatnonzero(new_run) + 1):
        if len(run):
            split, pos = int(splits[run[0]]), int(positions[run[0]])
            image_file = Path(out) / shard_names(SPLITS[split], pos // SHARD_SIZE)[0]
            _write_rows(image_file, pos % SHARD_SIZE, pixels[run])
    return len(offsets)


_buffer_held: list[np.ndarray] = []  # this worker's one pixel buffer


def _buffer(shape: tuple[int, ...]) -> np.ndarray:
    """A reused pixel buffer per worker: fresh memory costs a page fault per 4 KiB on first touch, which
    would cost as much as the copy itself for every shard."""
    held = _buffer_held[0] if _buffer_held else None
    if held is None or held.shape[1:] != shape[1:] or len(held) < shape[0]:
        _buffer_held[:] = [held := np.empty(shape, np.uint8)]
    return held[: shape[0]]


def _write_rows(path: Path, first: int, rows: np.ndarray) -> None:
    """Write ``rows`` over rows ``first..`` of the ``.npy`` file at ``path`` (allocated by ``create_shard``)."""
    fmt = np.lib.format
    with open(path, "r+b") as fh:
        read_header = fmt.read_array_header_1_0 if fmt.read_magic(fh) == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read_header(fh)
        if dtype != np.uint8 or first + len(rows) > shape[0] or tuple(shape[1:]) != rows.shape[1:]:
            raise ShardError(f"{path} holds {shape} {dtype}: it cannot take rows {first}.. of {rows.shape}")
        data, at = memoryview(np.ascontiguousarray(rows)).cast("B"), fh.tell() + first * rows[0].nbytes
        while data:  # pwrite may write less than asked
            done = os.pwrite(fh.fileno(), data, at)
            data, at = data[done:], at + done


def preprocess(raw: Path, out: Path, params: dict, workers: int | None = None) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    raw = Path(raw)
    index = read_index(raw)
    # Name order (the manifest's row numbers, sorted by file): every later column is read in this order.
    order = pc.sort_indices(_read_manifest(raw, ["file"])["file"]).to_numpy()
    manifest = _read_manifest(raw, ["label", "shard", "offset", "size"], order)
    names = sorted(str(c) for c in pc.unique(manifest["label"]).to_pylist())
    class_names = [c for c in names if c != UNLABELLED]
    labelled = bool(class_names) and UNLABELLED not in names
    if labelled:
        ids = pc.index_in(manifest["label"], value_set=pa.array(class_names))
        label_ids = ids.to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        label_ids = np.full(len(manifest), -1, np.int64)
    is_val = stratified_split(label_ids, params["val_fraction"], params["split_seed"])
    res, ch = params["resolution"], params["channels"]

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    position = np.empty(len(manifest), np.int64)  # each image's place in its split (name order)
    for split, mask in zip(SPLITS, (~is_val, is_val), strict=True):
        sel = np.flatnonzero(mask)
        position[sel] = np.arange(len(sel))
        for i, start in enumerate(range(0, max(len(sel), 1), SHARD_SIZE)):
            create_shard(tmp, split, i, label_ids[sel[start : start + SHARD_SIZE]], (ch, res, res))
    tasks = _shard_tasks(manifest, is_val, position, index)
    total, manifest = len(manifest), None  # the tasks hold what the workers need
    run = partial(_preprocess_shard, str(raw), str(tmp), res, ch, params["background"])
    workers = 1 if total < MIN_PARALLEL_ITEMS else workers
    done = sum(ordered_map(run, tasks, workers=workers, chunksize=1, min_items=2))
    if done != total:  # every manifest row belongs to exactly one task
        raise ShardError(f"{done} images preprocessed for the {total} rows of {raw}/manifest.parquet")

    sources = _read_manifest(raw, ["file", "sha256"])
    table = []
    for split, mask in zip(SPLITS, (~is_val, is_val), strict=True):
        sel = np.flatnonzero(mask)
        offsets = np.arange(len(sel), dtype=np.int64)
        rows = pa.array(order[sel], pa.int64())
        table.append(
            pa.table(
                {
                    "split": pa.array([split] * len(sel), pa.string()),
                    "shard": offsets // SHARD_SIZE,
                    "offset": offsets % SHARD_SIZE,
                    "label": label_ids[sel],
                    "file": sources["file"].take(rows),
                    "sha256": sources["sha256"].take(rows),
                }
            )
        )
    pq.write_table(pa.concat_tables(table), tmp / "index.parquet")
    meta = {
        "resolution": res,
        "channels": ch,
        "class_names": class_names if labelled else [],
        "counts": {"train": int((~is_val).sum()), "val": int(is_val.sum())},
        "params": params,
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = ap.parse_args(argv)
    try:
        meta = preprocess(args.raw, args.out, load_params(args.params))
    except ShardError as exc:  # one line for the user (DVC shows it, the asset reports it), no traceback
        raise SystemExit(f"preprocess: error: {exc}") from None
    print(f"preprocess: {meta['counts']} at {meta['resolution']}px x{meta['channels']} -> {args.out}")


if __name__ == "__main__":
    main()
