"""Listing an image folder: its files (the same rule for ingestion and change detection) and a cheap
fingerprint of the listing (names, sizes, mtimes) that says whether anything may have changed since."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def list_files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a sorted relative posix path, except hidden ones (and those in hidden
    folders: .git, .ipynb_checkpoints). Strings, not Paths: a million of them stay small."""
    out = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(top).relative_to(folder).as_posix()
        prefix = "" if rel == "." else rel + "/"
        out.extend(prefix + f for f in files if not f.startswith(".") and os.path.isfile(os.path.join(top, f)))
    return sorted(out)


def listing_fingerprint(folder: Path) -> str:
    """sha256 over (path, size, mtime_ns) of every listed file: equal fingerprints mean nothing was added,
    removed, resized or rewritten (a rewrite updates mtime), without reading a byte of the files."""
    h = hashlib.sha256()
    for rel in list_files(folder):
        st = os.stat(folder / rel)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
