"""Object store for exported generators: one layout, one publish protocol, two backends.

Used by the pipeline (which publishes) and by downstream services (which pull, see ``ganlib.serving``).
Imports only the standard library; boto3 is imported lazily by ``S3Store``. No torch, no dagster.

Layout (the contract; ``<prefix>`` is the store's root: a directory or ``s3://bucket/prefix``)::

    <prefix>/<model>/<version>/generator.onnx   the exported generator (single file, weights inside)
    <prefix>/<model>/<version>/manifest.json    written after the ONNX file: its presence commits the version
    <prefix>/<model>/latest.json                written last: points at the newest complete version

``manifest.json`` fields (``schema_version`` 1):

    schema_version  int      1
    model, version  str      names: ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``, no ``..``; version != ``latest``
    sha256, size    str, int checksum and byte size of ``generator.onnx``
    opset           int      ONNX opset of the default domain
    inputs/outputs  list     ``[{"name", "dtype", "shape"}]``; the batch axis is the string ``"N"``
    fid             dict     ``{"value": float | None, "backbone": str | None}`` (e.g. ``inception``)
    data_hash       str      DVC hash of the processed dataset the generator was trained on
    config          dict     the GAN config used for training
    config_hash     str      sha256 of the canonical JSON of ``config`` (computed when not given)
    created_at      str      UTC ISO 8601, e.g. ``2025-01-31T12:00:00.123456+00:00``
    git_commit      str      commit of the training code, or null
    extra           dict     free-form (parity error, exporter, pruning report, ...)

``latest.json``: ``{"schema_version", "model", "version", "sha256", "size", "manifest", "created_at",
"updated_at"}`` where ``manifest`` is the manifest's key relative to the store root.

Publish protocol and guarantees (``publish``):

1. refuse if the version's manifest exists (versions are immutable);
2. create ``generator.onnx`` *exclusively* (S3 ``If-None-Match: *``; a hard link locally). If it exists
   without a manifest (a crashed or a concurrent publish of the same version) identical bytes are
   accepted (a retry), other bytes are refused: a losing publisher never overwrites what a winner commits;
3. write ``manifest.json`` exclusively, the commit: of two publishers of one version only one commits;
4. verify: re-read the ONNX object and the manifest, check sha256/size;
5. move ``latest.json`` with compare-and-swap (S3 ``If-Match: <etag>``; a file lock locally), and only
   forward: it moves to a version only if that version's ``(created_at, version)`` is newer than the
   current one. ``set_latest`` moves it anywhere (rollback).

So a reader that follows ``latest`` always finds a committed, verified version. A publish that dies half
way leaves at most an orphan ``generator.onnx`` without a manifest: no reader follows it, a retry with the
same bytes completes the version, and other bytes need a new version name (or the orphan deleted by
hand). Two concurrent publishes of different versions leave ``latest`` on the newer one, both complete.

Caveat: the guarantees rest on the server's conditional writes. AWS S3 implements ``If-None-Match`` and
``If-Match`` atomically; moto checks then writes (a tiny race window); servers that ignore the headers
degrade steps 2, 3 and 5 to last-writer-wins. Readers still verify sha256 on every pull.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable
from urllib.parse import unquote, urlparse

SCHEMA_VERSION = 1
ONNX_NAME = "generator.onnx"
MANIFEST_NAME = "manifest.json"
LATEST_NAME = "latest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RESERVED_VERSIONS = {"latest", LATEST_NAME}
_INTERNAL_DIR = ".gan-store"  # LocalStore's temp files and locks; never a valid key segment
_CHUNK = 1 << 20


# ----------------------------------------------------------------------------------------------- errors
class StoreError(RuntimeError):
    """Anything that went wrong talking to the store; the message names the store and the cause."""


class ObjectNotFound(StoreError):
    pass


class PreconditionFailed(StoreError):
    """A conditional write lost: the object exists (if_none_match) or changed (if_match)."""


class VersionExistsError(StoreError):
    pass


class ChecksumError(StoreError):
    """Bytes whose sha256 or size differ from what the manifest promises."""


class ManifestError(StoreError):
    """A manifest or latest.json that is not valid JSON, lacks a field, or names another model/version."""


class AuthError(StoreError):
    """The store refused the credentials (InvalidAccessKeyId, AccessDenied, ...): permanent, never retried."""


class LatestNotMovedError(StoreError):
    """The version is committed and verified; only moving ``latest.json`` failed. Publishing the same
    version again (same bytes) moves the pointer. ``permanent``: the cause was an auth error."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def is_permanent(exc: BaseException) -> bool:
    """True for failures a retry cannot fix: refused credentials or permissions."""
    return isinstance(exc, AuthError) or bool(getattr(exc, "permanent", False))


class InvalidNameError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------- helpers
def validate_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise InvalidNameError(
            f"invalid {what} {name!r}: use 1-128 characters from [A-Za-z0-9._-], starting with a letter "
            "or digit, without '..' or slashes"
        )
    return name


def _validate_version(version: str) -> str:
    validate_name(version, "version")
    if version in _RESERVED_VERSIONS:
        raise InvalidNameError(f"invalid version {version!r}: the name is reserved for the latest pointer")
    return version


def _check_key(key: str) -> str:
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or any(p in ("", ".", "..") for p in parts)
        or parts[0] == _INTERNAL_DIR
    ):
        raise InvalidNameError(f"invalid object key {key!r}: keys are relative, '/'-separated, without '..'")
    return key


def sha256_file(path: str | Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of a config dict."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _json_bytes(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


# ---------------------------------------------------------------------------------------------- backends
@runtime_checkable
class Store(Protocol):
    """The backend interface. Keys are relative to the store's root (``model/version/generator.onnx``)."""

    uri: str

    def put_bytes(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> None:
        """Write atomically. ``if_none_match``: only if absent; ``if_match``: only if the etag is unchanged.
        A lost condition raises ``PreconditionFailed``."""

    def put_file(self, key: str, path: str | Path, *, if_none_match: bool = False) -> None: ...

    def get_bytes(self, key: str) -> bytes:
        """Raises ``ObjectNotFound`` when the key is absent."""

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """Content and an opaque version tag for ``if_match``; None when absent."""

    def get_file(self, key: str, dest: str | Path) -> None:
        """Stream the object into ``dest`` (overwritten)."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (a plain string prefix), sorted."""

    def uri_for(self, key: str) -> str: ...


class LocalStore:
    """A directory. Writes go to a temp file in the same filesystem, then ``os.replace`` (or ``os.link``
    for exclusive writes), so a reader sees the old bytes or the new ones, never a partial file."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()
        self._tmp = self.root / _INTERNAL_DIR / "tmp"
        self._locks = self.root / _INTERNAL_DIR / "locks"

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    @contextlib.contextmanager
    def _os_errors(self, what: str, key: str) -> Iterator[None]:
        """Disk full, permissions, a file where a directory should be: one ``StoreError`` naming the path."""
        try:
            yield
        except StoreError:
            raise
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            if what == "read":
                raise ObjectNotFound(f"{self.uri_for(key)} does not exist") from None
            raise StoreError(f"cannot {what} {self.uri_for(key)}: {exc.strerror or exc}") from None
        except OSError as exc:
            raise StoreError(f"cannot {what} {self.uri_for(key)}: {exc.strerror or exc}") from None

    def uri_for(self, key: str) -> str:
        return self._path(key).as_uri()

    def _write_tmp(self, data_or_path: bytes | Path) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as f:
                if isinstance(data_or_path, bytes):
                    f.write(data_or_path)
                else:
                    with open(data_or_path, "rb") as src:
                        while chunk := src.read(_CHUNK):
                            f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        # flock conflicts between separate open() calls, so this serialises threads and processes alike.
        self._locks.mkdir(parents=True, exist_ok=True)
        lock_path = self._locks / (hashlib.sha1(key.encode()).hexdigest() + ".lock")
        try:
            import fcntl
        except ImportError:  # not POSIX: serialise within this process only
            with _FALLBACK_LOCK:
                yield
            return
        with open(lock_path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _commit(self, tmp: Path, dest: Path, exclusive: bool, key: str) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if exclusive:
                try:
                    os.link(tmp, dest)  # atomic create-if-absent
                except FileExistsError:
                    raise PreconditionFailed(f"{self.uri_for(key)} already exists") from None
            else:
                os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> None:
        dest = self._path(key)
        with self._os_errors("write", key):
            tmp = self._write_tmp(bytes(data))
            if if_match is None:
                self._commit(tmp, dest, if_none_match, key)
            else:
                self._swap(key, tmp, dest, if_match)

    def _swap(self, key: str, tmp: Path, dest: Path, if_match: str) -> None:
        with self._key_lock(key):
            current = self.get_with_etag(key)
            if current is None or current[1] != if_match:
                tmp.unlink(missing_ok=True)
                raise PreconditionFailed(f"{self.uri_for(key)} changed since it was read")
            self._commit(tmp, dest, False, key)

    def put_file(self, key: str, path: str | Path, *, if_none_match: bool = False) -> None:
        dest = self._path(key)
        with self._os_errors("write", key):
            self._commit(self._write_tmp(Path(path)), dest, if_none_match, key)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with self._os_errors("read", key):
            return path.read_bytes()

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self.get_bytes(key)
        except ObjectNotFound:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def get_file(self, key: str, dest: str | Path) -> None:
        src = self._path(key)
        with self._os_errors("read", key), open(src, "rb") as fin, open(dest, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                fout.write(chunk)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for p in self.root.rglob("*"):
            rel = p.relative_to(self.root).as_posix()
            if p.is_file() and not rel.startswith(_INTERNAL_DIR + "/") and rel.startswith(prefix):
                keys.append(rel)
        return sorted(keys)


_FALLBACK_LOCK = threading.Lock()
_T = TypeVar("_T")
_AUTH_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "InvalidClientTokenId",
    "403",
}


class S3Store:
    """S3 or an S3-compatible server (MinIO, moto) via boto3.

    Credentials come from boto3's standard chain (env vars, shared files, SSO, instance/pod role) and are
    never logged or put into messages. Retries: botocore's ``standard`` mode (``max_attempts``) handles
    throttling, 5xx and connection errors of each call with exponential backoff; on top, an operation whose
    response body breaks off mid-stream (outside botocore's loop) is retried ``io_retries`` times with
    exponential backoff and jitter. Every failure surfaces as ``StoreError`` naming bucket and endpoint.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int = 4,
        io_retries: int = 2,
        backoff_s: float = 0.5,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        profile: str | None = None,
    ) -> None:
        if not bucket or "/" in bucket:
            raise InvalidNameError(f"invalid bucket name {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = (
            endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        self.region = region
        self.io_retries = io_retries
        self.backoff_s = backoff_s
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self._client_kwargs = {
            "max_attempts": max_attempts,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "profile": profile,
        }
        self._client_obj: Any = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def where(self) -> str:
        return f"{self.uri} (endpoint {self.endpoint_url or 'AWS default'})"

    @property
    def _client(self) -> Any:
        with self._client_lock:
            if self._client_obj is None:
                import boto3
                from botocore.config import Config

                kw = self._client_kwargs
                config = Config(
                    retries={"mode": "standard", "max_attempts": kw["max_attempts"]},
                    connect_timeout=kw["connect_timeout"],
                    read_timeout=kw["read_timeout"],
                    # Path-style works with every S3-compatible server on any host name.
                    s3={"addressing_style": "path"} if self.endpoint_url else {},
                )
                session = boto3.session.Session(profile_name=kw["profile"])
                self._client_obj = session.client(
                    "s3", endpoint_url=self.endpoint_url, region_name=self.region, config=config
                )
            return self._client_obj

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _call(self, what: str, key: str | None, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` with our retry loop and translate every boto error into one ``StoreError``."""
        from botocore import exceptions as bx

        target = self.uri_for(key) if key else self.where
        endpoint = self.endpoint_url or "AWS default"
        for attempt in range(self.io_retries + 1):
            try:
                return fn()
            except (bx.ResponseStreamingError, bx.ReadTimeoutError, bx.IncompleteReadError) as exc:
                # The connection broke while reading a body: botocore's loop is over by then, so retry here.
                if attempt < self.io_retries:
                    time.sleep(self.backoff_s * 2**attempt * (0.5 + random.random()))
                    continue
                raise StoreError(
                    f"connection to S3 endpoint {endpoint} broke while reading {target}: "
                    f"{type(exc).__name__} after {attempt + 1} attempt(s)"
                ) from None
            except (bx.ConnectionError, bx.HTTPClientError) as exc:
                # botocore already retried these max_attempts times with backoff.
                raise StoreError(
                    f"cannot reach S3 endpoint {endpoint} to {what} {target}: {type(exc).__name__} "
                    f"after {self._client_kwargs['max_attempts']} attempt(s)"
                ) from None
            except (bx.NoCredentialsError, bx.PartialCredentialsError):
                raise StoreError(
                    f"no usable AWS credentials to {what} {target}: set them via the standard chain "
                    "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance/pod role)"
                ) from None
            except bx.ClientError as exc:
                raise self._translate(exc, what, target) from None
            except bx.BotoCoreError as exc:
                raise StoreError(
                    f"S3 error to {what} {target} at {self.where}: {type(exc).__name__}"
                ) from None
        raise AssertionError("unreachable")

    def _translate(self, exc: Any, what: str, target: str) -> StoreError:
        endpoint = self.endpoint_url or "AWS default"
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return StoreError(
                f"bucket '{self.bucket}' does not exist at {self.endpoint_url or 'AWS'} ({what} {target})"
            )
        if code in ("NoSuchKey", "404"):
            return ObjectNotFound(f"{target} does not exist")
        if code in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
            return PreconditionFailed(f"conditional write to {target} lost ({code})")
        if code in _AUTH_CODES:
            hint = {
                "InvalidAccessKeyId": "the access key id is unknown to this endpoint",
                "SignatureDoesNotMatch": "the secret key does not match the access key id",
                "AccessDenied": "the credentials lack permission (or the key is absent without s3:ListBucket)",
            }.get(code, "check the credentials and their permissions")
            return AuthError(f"access denied ({code}) to {what} {target} at endpoint {endpoint}: {hint}")
        return StoreError(f"S3 error {code or status} to {what} {target} at endpoint {endpoint}")

    # -- the Store interface
    def put_bytes(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> None:
        extra: dict[str, str] = {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = if_match
        k = self._key(key)
        self._call(
            "write",
            key,
            lambda: self._client.put_object(Bucket=self.bucket, Key=k, Body=bytes(data), **extra),
        )

    def put_file(self, key: str, path: str | Path, *, if_none_match: bool = False) -> None:
        k = self._key(key)
        extra = {"IfNoneMatch": "*"} if if_none_match else {}

        def put() -> None:
            # One PUT (up to 5 GB; a single-file ONNX is < 2 GB). The file is seekable, so botocore can retry.
            with open(path, "rb") as f:
                self._client.put_object(Bucket=self.bucket, Key=k, Body=f, **extra)

        self._call("upload", key, put)

    def get_bytes(self, key: str) -> bytes:
        got = self.get_with_etag(key)
        if got is None:
            raise ObjectNotFound(f"{self.uri_for(key)} does not exist")
        return got[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        k = self._key(key)

        def get() -> tuple[bytes, str]:
            resp = self._client.get_object(Bucket=self.bucket, Key=k)
            return resp["Body"].read(), resp["ETag"]

        try:
            return self._call("read", key, get)
        except ObjectNotFound:
            return None

    def get_file(self, key: str, dest: str | Path) -> None:
        k = self._key(key)

        def get() -> None:
            resp = self._client.get_object(Bucket=self.bucket, Key=k)
            with open(dest, "wb") as f:
                for chunk in resp["Body"].iter_chunks(_CHUNK):
                    f.write(chunk)

        self._call("download", key, get)

    def exists(self, key: str) -> bool:
        # A ranged GET instead of HEAD: HEAD errors have no body, so a missing bucket, a missing key and
        # bad credentials would be indistinguishable.
        k = self._key(key)

        def probe() -> bool:
            try:
                self._client.get_object(Bucket=self.bucket, Key=k, Range="bytes=0-0")["Body"].close()
            except Exception as exc:
                if getattr(exc, "response", {}).get("Error", {}).get("Code") == "InvalidRange":
                    return True  # an empty object
                raise
            return True

        try:
            return self._call("check", key, probe)
        except ObjectNotFound:
            return False

    def list(self, prefix: str = "") -> list[str]:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0

        def ls() -> list[str]:
            keys = []
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                keys.extend(o["Key"][strip:] for o in page.get("Contents", []))
            return sorted(keys)

        return self._call("list", None, ls)


def open_store(uri: str | Path, **s3_kwargs: Any) -> Store:
    """``file:///abs/path`` or a plain path -> LocalStore; ``s3://bucket/prefix`` -> S3Store.

    ``s3_kwargs`` go to ``S3Store`` (endpoint_url, region, max_attempts, ...); without ``endpoint_url`` the
    env vars ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` are used, else AWS itself.
    """
    if isinstance(uri, Path):
        return LocalStore(uri)
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise InvalidNameError(f"invalid store URI {uri!r}: expected s3://bucket[/prefix]")
        return S3Store(parsed.netloc, parsed.path, **s3_kwargs)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidNameError(f"invalid store URI {uri!r}: file URIs must be file:///absolute/path")
        return LocalStore(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # "C:" on Windows is a drive, not a scheme
        raise InvalidNameError(
            f"unsupported store URI scheme {parsed.scheme!r} in {uri!r}: use a path, file:// or s3://"
        )
    return LocalStore(uri)


# ---------------------------------------------------------------------------------------------- protocol
def onnx_key(model: str, version: str) -> str:
    return f"{validate_name(model, 'model')}/{_validate_version(version)}/{ONNX_NAME}"


def manifest_key(model: str, version: str) -> str:
    return f"{validate_name(model, 'model')}/{_validate_version(version)}/{MANIFEST_NAME}"


def latest_key(model: str) -> str:
    return f"{validate_name(model, 'model')}/{LATEST_NAME}"


_MANIFEST_FIELDS = {
    "opset",
    "inputs",
    "outputs",
    "fid",
    "data_hash",
    "config",
    "config_hash",
    "created_at",
    "git_commit",
    "extra",
}
_REQUIRED_FIELDS = {"opset", "inputs", "outputs"}


def build_manifest(
    model: str, version: str, sha256: str, size: int, fields: dict[str, Any]
) -> dict[str, Any]:
    """The manifest dict for ``publish``; unknown top-level fields are refused (put them under ``extra``)."""
    unknown = set(fields) - _MANIFEST_FIELDS
    if unknown:
        raise ValueError(f"unknown manifest fields {sorted(unknown)}: put free-form fields under 'extra'")
    missing = _REQUIRED_FIELDS - set(fields)
    if missing:
        raise ValueError(f"manifest fields {sorted(missing)} are required")
    config = dict(fields.get("config") or {})
    fid = fields.get("fid") or {}
    if not isinstance(fid, dict) or set(fid) - {"value", "backbone"}:
        raise ValueError("manifest field 'fid' must be {'value': float | None, 'backbone': str | None}")
    created_at = fields.get("created_at") or utc_now_iso()
    _parse_time(created_at)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": validate_name(model, "model"),
        "version": _validate_version(version),
        "sha256": sha256,
        "size": int(size),
        "opset": int(fields["opset"]),
        "inputs": list(fields["inputs"]),
        "outputs": list(fields["outputs"]),
        "fid": {"value": fid.get("value"), "backbone": fid.get("backbone")},
        "data_hash": fields.get("data_hash"),
        "config": config,
        "config_hash": fields.get("config_hash") or config_hash(config),
        "created_at": created_at,
        "git_commit": fields.get("git_commit"),
        "extra": dict(fields.get("extra") or {}),
    }


def _parse_time(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise ValueError(f"created_at {value!r} is not ISO 8601") from None
    if t.tzinfo is None:
        raise ValueError(f"created_at {value!r} needs a timezone (UTC)")
    return t


def _order(doc: dict[str, Any]) -> tuple[datetime, str]:
    return _parse_time(doc["created_at"]), doc["version"]


@dataclass(frozen=True)
class PublishResult:
    uri: str  # of generator.onnx
    manifest_uri: str
    model: str
    version: str
    sha256: str
    size: int
    latest_version: str | None  # where latest points after this publish
    latest_moved: bool  # False when a newer version already was latest


def publish(
    store: Store,
    model: str,
    version: str,
    onnx_path: str | Path,
    manifest_fields: dict[str, Any],
    *,
    move_latest: bool = True,
) -> PublishResult:
    """Upload a new, immutable version and move ``latest`` to it (see the module docstring).

    Idempotent: publishing a version that is already committed with the same bytes (a re-run after
    ``LatestNotMovedError``, or a retried step) verifies it and moves ``latest``; other bytes are refused.
    """
    okey, mkey = onnx_key(model, version), manifest_key(model, version)
    sha, size = sha256_file(onnx_path)
    existing = store.get_with_etag(mkey)
    if existing is not None:
        manifest = _parse_json(existing[0], store.uri_for(mkey))
        if (manifest.get("sha256"), manifest.get("size")) != (sha, size):
            raise VersionExistsError(
                f"{model}/{version} already exists at {store.uri_for(mkey)} with other bytes "
                f"(sha256 {manifest.get('sha256')}); versions are immutable: publish under a new version"
            )
    else:
        manifest = build_manifest(model, version, sha, size, manifest_fields)
        body = _json_bytes(manifest)
        _upload_onnx_exclusively(store, okey, onnx_path, sha, f"{model}/{version}")
        try:
            store.put_bytes(mkey, body, if_none_match=True)
        except PreconditionFailed:
            # Ours if a retried PUT already landed; otherwise a concurrent publisher of this version won.
            existing = store.get_with_etag(mkey)
            if existing is None or existing[0] != body:
                raise VersionExistsError(
                    f"{model}/{version} was published concurrently at {store.uri_for(mkey)}; versions are immutable"
                ) from None

    _verify_version(store, model, version, expected=manifest)
    try:
        if move_latest:
            latest_version, moved = _advance_latest(store, manifest, force=False)
        else:
            doc = read_latest(store, model)
            latest_version, moved = (doc["version"] if doc else None), False
    except StoreError as exc:
        raise LatestNotMovedError(
            f"{model}/{version} is committed and verified at {store.uri_for(mkey)} (safely stored), but "
            f"moving {store.uri_for(latest_key(model))} failed: {exc}. Publish the same version again to "
            "move the pointer (publishing is idempotent)",
            permanent=is_permanent(exc),
        ) from None
    return PublishResult(
        uri=store.uri_for(okey),
        manifest_uri=store.uri_for(mkey),
        model=model,
        version=version,
        sha256=sha,
        size=size,
        latest_version=latest_version,
        latest_moved=moved,
    )


def _upload_onnx_exclusively(store: Store, key: str, path: str | Path, sha: str, name: str) -> None:
    """Create generator.onnx only if absent, so a losing concurrent publisher can never overwrite the bytes
    a winner committed. Existing identical bytes (a retry, or a twin publisher) are accepted."""
    try:
        store.put_file(key, path, if_none_match=True)
        return
    except PreconditionFailed:
        pass
    with tempfile.TemporaryDirectory(prefix="gan-publish-") as d:
        tmp = Path(d) / ONNX_NAME
        store.get_file(key, tmp)
        if sha256_file(tmp)[0] == sha:
            return
    raise VersionExistsError(
        f"{name}: {store.uri_for(key)} exists with other bytes and no manifest yet: a concurrent publish of "
        "this version is in progress, or one was abandoned. Publish under a new version (or delete the orphan)."
    )


def _verify_version(
    store: Store, model: str, version: str, expected: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Re-read the manifest and the ONNX object; raise ``ChecksumError`` unless they agree."""
    manifest = read_manifest(store, model, version)
    if expected is not None and manifest != expected:
        raise ChecksumError(
            f"manifest of {model}/{version} at {store.uri_for(manifest_key(model, version))} "
            "differs from the one just written"
        )
    with tempfile.TemporaryDirectory(prefix="gan-verify-") as d:
        download_verified(store, manifest, Path(d) / ONNX_NAME)
    return manifest


def download_verified(store: Store, manifest: dict[str, Any], dest: str | Path) -> None:
    """Download a version's generator.onnx to ``dest`` and check its sha256 and size against ``manifest``;
    raise ``ChecksumError`` (naming both) when they differ. ``dest`` is left for the caller to discard."""
    key = onnx_key(manifest["model"], manifest["version"])
    store.get_file(key, dest)
    sha, size = sha256_file(dest)
    if (sha, size) != (manifest["sha256"], manifest["size"]):
        raise ChecksumError(
            f"{store.uri_for(key)}: object has sha256 {sha} / {size} bytes, "
            f"manifest says {manifest['sha256']} / {manifest['size']} bytes"
        )


def _latest_doc(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "model": manifest["model"],
        "version": manifest["version"],
        "sha256": manifest["sha256"],
        "size": manifest["size"],
        "manifest": manifest_key(manifest["model"], manifest["version"]),
        "created_at": manifest["created_at"],
        "updated_at": utc_now_iso(),
    }


def _advance_latest(
    store: Store, manifest: dict[str, Any], *, force: bool, attempts: int = 20
) -> tuple[str, bool]:
    """Compare-and-swap loop on latest.json. Returns (version latest points at, whether we moved it)."""
    key = latest_key(manifest["model"])
    body = _json_bytes(_latest_doc(manifest))
    for attempt in range(attempts):
        current = store.get_with_etag(key)
        if current is not None:
            doc = json.loads(current[0])
            if doc["version"] == manifest["version"]:
                return doc["version"], True  # already ours (e.g. a retried write that landed)
            if not force and _order(doc) >= _order(manifest):
                return doc["version"], False  # a newer version is latest: only move forward
        try:
            if current is None:
                store.put_bytes(key, body, if_none_match=True)
            else:
                store.put_bytes(key, body, if_match=current[1])
            return manifest["version"], True
        except (PreconditionFailed, ObjectNotFound):  # S3 answers If-Match on a vanished key with 404
            time.sleep(0.01 * (attempt + 1) * random.random())  # someone else moved it: re-read, decide again
    raise StoreError(
        f"could not update {store.uri_for(key)}: {attempts} concurrent-update conflicts in a row"
    )


def set_latest(store: Store, model: str, version: str) -> dict[str, Any]:
    """Point ``latest`` at an existing, verified version, newer or not (a rollback). Returns latest.json."""
    manifest = _verify_version(store, model, version)
    _advance_latest(store, manifest, force=True)
    return read_latest(store, model) or {}


_LATEST_REQUIRED = ("model", "version", "sha256", "size")
_MANIFEST_REQUIRED = ("model", "version", "sha256", "size")


def _parse_json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"{where} is not a JSON object")
    return doc


def _bound(doc: dict[str, Any], where: str, required: tuple[str, ...], **expected: str) -> dict[str, Any]:
    """``doc`` if it has every required field and names the model/version its key says; else one line."""
    missing = [f for f in required if f not in doc]
    if missing:
        raise ManifestError(f"{where} lacks the field(s) {', '.join(missing)}")
    for field_name, value in expected.items():
        if doc[field_name] != value:
            raise ManifestError(
                f"{where} names {field_name} {doc[field_name]!r}, but it was read from the key of "
                f"{field_name} {value!r}: refusing it"
            )
    return doc


def read_latest(store: Store, model: str) -> dict[str, Any] | None:
    """The latest.json of ``model``, or None when nothing was published yet. Raises ``ManifestError`` when
    it is not valid JSON, lacks a field or names another model."""
    key = latest_key(model)
    got = store.get_with_etag(key)
    if got is None:
        return None
    where = store.uri_for(key)
    return _bound(_parse_json(got[0], where), where, _LATEST_REQUIRED, model=model)


def read_manifest(store: Store, model: str, version: str) -> dict[str, Any]:
    """The manifest of ``model/version``, bound to its key: a manifest that names another model or version
    (copied or moved there) is refused, so a reader never fetches bytes from a key it did not ask for."""
    key = manifest_key(model, version)
    try:
        data = store.get_bytes(key)
    except ObjectNotFound:
        raise ObjectNotFound(f"version {model}/{version} does not exist (no {store.uri_for(key)})") from None
    where = store.uri_for(key)
    return _bound(_parse_json(data, where), where, _MANIFEST_REQUIRED, model=model, version=version)


def list_versions(store: Store, model: str) -> list[str]:
    """Committed versions (those with a manifest), sorted by name."""
    prefix = f"{validate_name(model, 'model')}/"
    return sorted(
        k[len(prefix) : -len(MANIFEST_NAME) - 1]
        for k in store.list(prefix)
        if k.endswith("/" + MANIFEST_NAME) and k.count("/") == 2
    )
