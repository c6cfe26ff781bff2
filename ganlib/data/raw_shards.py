"""The raw data layout: accepted source files packed, byte for byte, into checksummed tar shards.

``<raw>/shards/raw-00000.tar``  the original bytes of up to ``IMAGES_PER_SHARD`` accepted files, in name order
``<raw>/shards.json``           one entry per shard: file, images, bytes, sha256 of the whole shard file
``<raw>/manifest.parquet``      one row per accepted file, with the shard and the byte offset of its data

Why shards, not one file per image: DVC keeps one entry per file of a tracked folder (hashing, state, cache
links, push/pull are all per file), so ``dvc add``/``dvc repro`` cost grows with the file count; DVC's
maintainers recommend packing many small files into archives and tracking those
(https://github.com/treeverse/dvc/issues/7681, https://github.com/iterative/dvc/issues/497). With shards
DVC tracks O(images / IMAGES_PER_SHARD) files. The price: DVC deduplicates per shard, so a new or removed
file re-packs the shards from its place in name order on (files that sort last touch only the last shard).

A shard is a plain POSIX tar (``tar -xf raw-00000.tar`` gives the files back under their relative names).
Readers never parse it: the manifest gives each file's offset, and the shard's sha256 is checked before any
byte of it is used, so a shard damaged on disk fails with one line naming it.

The preprocess stage runs this file by path (dvc.yaml), so it uses only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import tarfile
from pathlib import Path
from typing import Any

IMAGES_PER_SHARD = 2048
SHARD_INDEX = "shards.json"
LAYOUT = "tar-shards/1"  # changes when the raw layout does: an older raw copy is then ingested again
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE


class ShardError(RuntimeError):
    """A raw shard is missing, damaged, or does not match ``shards.json``; the message is one line."""


def shard_file(i: int) -> str:
    """Shard ``i``'s path relative to the raw folder."""
    return f"shards/raw-{i:05d}.tar"


# A ustar header with fixed mode 0644, owner 0:0, mtime 0 (the same files always give the same shard bytes,
# so a stable DVC hash); the name, size and checksum are filled in per file.
_USTAR = bytearray(_BLOCK)
_USTAR[100:148] = b"0000644\x000000000\x000000000\x0000000000000\x0000000000000\x00"
_USTAR[148:157] = b"        0"  # checksum (computed with these spaces), then type 0: a regular file
_USTAR[257:265] = b"ustar\x0000"


def _header(name: str, size: int) -> bytes:
    """The tar header of one regular file. Built by hand for the usual short ASCII name (tarfile's own costs
    ~20 us a file, a tenth of a PNG decode); tarfile's PAX header for anything else."""
    raw = name.encode("ascii", "surrogateescape") if name.isascii() else b""
    if not raw or len(raw) > 100 or size >= 8**11:
        info = tarfile.TarInfo(name)
        info.size = size
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    block = bytearray(_USTAR)
    block[: len(raw)] = raw
    block[124:136] = b"%011o\x00" % size
    block[148:156] = b"%06o\x00 " % sum(block)
    return bytes(block)


class ShardWriter:
    """Appends files to one tar shard, hashing as it writes; ``add`` returns where the file's bytes start."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self._fh, self._sha = path, open(path, "wb", buffering=1 << 20), hashlib.sha256()  # noqa: SIM115
        self.offset = self.count = 0

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._sha.update(data)
        self.offset += len(data)

    def add(self, name: str, data: bytes) -> int:
        header = _header(name, len(data))
        start = self.offset + len(header)
        self._write(b"".join((header, data, bytes(-len(data) % _BLOCK))))
        self.count += 1
        return start

    def close(self) -> dict[str, Any]:
        """End the archive (two zero blocks, padded to a tar record); the shard's ``shards.json`` entry."""
        self._write(b"\0" * (2 * _BLOCK))
        self._write(b"\0" * (-self.offset % _RECORD))
        self._fh.close()
        return {"images": self.count, "bytes": self.offset, "sha256": self._sha.hexdigest()}


def write_index(raw: Path, shards: list[dict[str, Any]]) -> None:
    body = {"layout": LAYOUT, "images_per_shard": IMAGES_PER_SHARD, "shards": shards}
    (raw / SHARD_INDEX).write_text(json.dumps(body, indent=1, sort_keys=True))


def read_index(raw: Path) -> dict[str, dict[str, Any]]:
    """``shards.json`` as {shard file: entry}; a raw folder of another layout fails with what to do."""
    path = Path(raw) / SHARD_INDEX
    if not path.is_file():
        raise ShardError(
            f"{raw} has no {SHARD_INDEX}: it is not raw data in the {LAYOUT} layout (an older ingest?); "
            "materialize raw_images to ingest it again"
        )
    body = json.loads(path.read_text())
    if body.get("layout") != LAYOUT:
        raise ShardError(f"{path} is layout {body.get('layout')!r}, expected {LAYOUT!r}: ingest it again")
    return {s["file"]: s for s in body["shards"]}


def open_shard(raw: Path, entry: dict[str, Any]) -> mmap.mmap:
    """The shard memory-mapped, after checking its size and sha256 against its ``shards.json`` entry."""
    path = Path(raw) / entry["file"]
    fix = f"restore it (`dvc checkout {raw}`) or ingest again (materialize raw_images)"
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise ShardError(f"raw shard {path} cannot be read ({exc.strerror}): {fix}") from None
    with fh:
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise ShardError(
                f"raw shard {path} is damaged: {size} bytes, shards.json records {entry['bytes']}: {fix}"
            )
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    digest = hashlib.sha256(mm).hexdigest()
    if digest != entry["sha256"]:
        mm.close()
        raise ShardError(
            f"raw shard {path} is damaged: sha256 {digest[:16]}..., shards.json records "
            f"{entry['sha256'][:16]}...: {fix}"
        )
    return mm
