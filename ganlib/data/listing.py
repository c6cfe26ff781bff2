"""Listing an image folder: its files (the same rule for ingestion and change detection) and a cheap
fingerprint of the listing (names, sizes, mtimes) that says whether anything may have changed since."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path


def _entries(folder: str, prefix: str = "") -> Iterator[tuple[str, os.DirEntry]]:
    """(relative posix path, entry) of every file below ``folder`` except hidden ones, in no set order.
    ``scandir`` entries: the kind of each entry comes with the listing, one ``stat`` per file at most."""
    with os.scandir(folder) as it:
        for entry in it:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from _entries(entry.path, prefix + entry.name + "/")
            elif entry.is_file():  # a link to a file counts (ingestion decides whether to follow it)
                yield prefix + entry.name, entry


def list_files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a sorted relative posix path, except hidden ones (and those in hidden
    folders: .git, .ipynb_checkpoints). Strings, not Paths: a million of them stay small."""
    return sorted(rel for rel, _ in _entries(str(folder)))


def listing_fingerprint(folder: Path) -> str:
    """sha256 over (path, size, mtime) of every listed file: equal fingerprints mean nothing was added,
    removed, resized or rewritten (a rewrite updates mtime), without reading a byte of the files."""
    rows = []
    for rel, entry in _entries(str(folder)):
        st = entry.stat()
        rows.append(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n")
    h = hashlib.sha256()
    for row in sorted(rows):
        h.update(row.encode())
    return h.hexdigest()
