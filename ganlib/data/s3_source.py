"""An ``s3://bucket/prefix`` source, read through the object store (``ganlib.store``): S3, MinIO, moto.

Objects under the prefix are downloaded keeping their relative keys as paths, so ``<prefix>/cat/1.png``
becomes ``<local_dir>/cat/1.png`` (class = first key segment below the prefix), then validated like any
image folder. Credentials come from boto3's standard chain (env, profile, role), never from params.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .sources import IngestError


def download_prefix(
    uri: str, local_dir: Path, progress: bool = False, endpoint_url: str | None = None
) -> Path:
    """Download every object under ``uri`` into a fresh ``local_dir``; returns ``local_dir``."""
    from tqdm.auto import tqdm

    from ganlib.store import StoreError, open_store

    local_dir = Path(local_dir)
    store = open_store(uri, **({"endpoint_url": endpoint_url} if endpoint_url else {}))
    try:
        keys = store.list("")
    except StoreError as exc:
        raise IngestError(f"cannot list {uri}: {exc}") from exc
    # Folder markers ("cat/") and keys a path cannot hold safely ("a//b", "../x") are not images.
    keys = [k for k in keys if not k.endswith("/") and not any(p in ("", ".", "..") for p in k.split("/"))]
    if not keys:
        raise IngestError(f"no objects under {uri}: check the bucket, the prefix and the endpoint")
    shutil.rmtree(local_dir, ignore_errors=True)
    local_dir.mkdir(parents=True)
    for key in tqdm(keys, desc="download", unit="obj", disable=not progress):
        dest = local_dir / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.get_file(key, dest)
        except (StoreError, ValueError) as exc:  # ValueError: a key the store refuses to read
            raise IngestError(f"download of {uri}/{key} failed: {exc}") from exc
    return local_dir
