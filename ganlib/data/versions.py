"""Short names for data versions: what folder names and backbone names carry of a DVC hash."""

from __future__ import annotations


def short_key(data_hash: str) -> str:
    """The first 8 hex characters of a DVC hash (``1a2b3c4d...dir`` -> ``1a2b3c4d``)."""
    return data_hash.split(".")[0][:8]
