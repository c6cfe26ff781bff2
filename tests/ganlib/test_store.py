"""The object store backends: the interface, conditional writes, URIs, and one clear StoreError per failure."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from loopback import free_port
from s3_server import moto_server_process

from ganlib.store import (
    InvalidNameError,
    LocalStore,
    ObjectNotFound,
    PreconditionFailed,
    S3Store,
    StoreError,
    open_store,
)

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's


def test_put_get_exists_list(store):
    store.put_bytes("m/v1/a.bin", b"hello")
    store.put_bytes("m/v1/b.bin", b"")
    store.put_bytes("other/x", b"x")
    assert store.get_bytes("m/v1/a.bin") == b"hello"
    assert store.get_bytes("m/v1/b.bin") == b""
    assert store.exists("m/v1/a.bin") and store.exists("m/v1/b.bin")
    assert not store.exists("m/v1/missing")
    assert store.list("m/") == ["m/v1/a.bin", "m/v1/b.bin"]
    assert store.list("") == ["m/v1/a.bin", "m/v1/b.bin", "other/x"]
    with pytest.raises(ObjectNotFound):
        store.get_bytes("m/v1/missing")
    assert store.get_with_etag("m/v1/missing") is None


def test_put_file_and_get_file(store, tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    store.put_file("m/v/f.bin", src)
    dest = tmp_path / "dest.bin"
    store.get_file("m/v/f.bin", dest)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(ObjectNotFound):
        store.get_file("m/v/nope.bin", tmp_path / "nope")


def test_conditional_writes(store):
    store.put_bytes("k/once", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("k/once", b"2", if_none_match=True)
    assert store.get_bytes("k/once") == b"1"

    _, etag = store.get_with_etag("k/once")
    store.put_bytes("k/once", b"3", if_match=etag)  # unchanged since read: the swap succeeds
    with pytest.raises(PreconditionFailed):
        store.put_bytes("k/once", b"4", if_match=etag)  # stale etag: refused
    assert store.get_bytes("k/once") == b"3"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "..", "a//b", "a/./b", "a\\b", ".gan-store/x"])
def test_bad_keys_rejected(store, key):
    with pytest.raises(InvalidNameError):
        store.put_bytes(key, b"x")


def test_local_store_writes_atomically(tmp_path):
    store = LocalStore(tmp_path / "s")
    store.put_bytes("m/v/f", b"old")
    store.put_bytes("m/v/f", b"new")
    assert (tmp_path / "s" / "m" / "v" / "f").read_bytes() == b"new"
    # Temp files live in the internal dir, are gone after the write, and never show in list().
    assert list((tmp_path / "s" / ".gan-store" / "tmp").iterdir()) == []
    assert store.list("") == ["m/v/f"]


def test_open_store_parses_uris(tmp_path, monkeypatch):
    local = open_store(tmp_path.as_uri())
    assert isinstance(local, LocalStore) and local.root == tmp_path.resolve()
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert open_store(str(tmp_path)).root == tmp_path.resolve()

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    s3 = open_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bucket", "some/prefix", "http://127.0.0.1:9")
    assert s3.uri_for("m/v/generator.onnx") == "s3://bucket/some/prefix/m/v/generator.onnx"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:10")  # the S3-specific one wins
    assert open_store("s3://bucket").endpoint_url == "http://127.0.0.1:10"
    assert open_store("s3://bucket", endpoint_url="http://x:1").endpoint_url == "http://x:1"

    for bad in ("gs://bucket/x", "s3://", "file://host/path"):
        with pytest.raises(InvalidNameError):
            open_store(bad)


# ----------------------------------------------------------------------------- failures: one clear error
def _fast(bucket: str, endpoint: str) -> S3Store:
    return S3Store(bucket, "p", endpoint_url=endpoint, max_attempts=1, io_retries=0, connect_timeout=2)


def _assert_clear(exc: StoreError, *must_contain: str, elapsed: float) -> None:
    msg = str(exc)
    for part in must_contain:
        assert part in msg, msg
    assert os.environ.get("AWS_SECRET_ACCESS_KEY", "\0") not in msg
    assert elapsed < 10, f"took {elapsed:.1f}s"


@pytest.mark.parametrize("op", ["exists", "get", "put", "list"])
def test_missing_bucket(s3_endpoint, op):
    store = _fast(f"no-such-{uuid.uuid4().hex[:8]}", s3_endpoint)
    calls = {
        "exists": lambda: store.exists("m/latest.json"),
        "get": lambda: store.get_bytes("m/latest.json"),
        "put": lambda: store.put_bytes("m/latest.json", b"{}"),
        "list": lambda: store.list("m/"),
    }
    t0 = time.monotonic()
    with pytest.raises(StoreError) as info:
        calls[op]()
    assert type(info.value) is StoreError  # not ObjectNotFound: a missing bucket is not a missing key
    _assert_clear(info.value, store.bucket, "does not exist", s3_endpoint, elapsed=time.monotonic() - t0)


def test_unreachable_endpoint():
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = S3Store("bucket", endpoint_url=endpoint, max_attempts=2, io_retries=0, connect_timeout=2)
    t0 = time.monotonic()
    with pytest.raises(StoreError) as info:
        store.get_bytes("m/latest.json")
    _assert_clear(info.value, "cannot reach", endpoint, "bucket", elapsed=time.monotonic() - t0)


def test_no_credentials(s3_endpoint, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    t0 = time.monotonic()
    with pytest.raises(StoreError) as info:
        _fast("bucket", s3_endpoint).exists("m/latest.json")
    _assert_clear(info.value, "no usable AWS credentials", "s3://bucket", elapsed=time.monotonic() - t0)


@pytest.fixture(scope="module")
def auth_server():
    with moto_server_process(auth=True) as server:
        yield server


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown-key", "InvalidAccessKeyId"),
        ("wrong-secret", "SignatureDoesNotMatch"),
        ("no-permission", "AccessDenied"),
    ],
)
def test_wrong_credentials(auth_server, monkeypatch, case, code):
    key_id, secret = {
        "unknown-key": ("AKIAUNKNOWNKEY000000", "whatever"),
        "wrong-secret": (auth_server.access_key_id, "not-the-secret"),
        "no-permission": (auth_server.access_key_id, auth_server.secret_access_key),
    }[case]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    store = _fast("models", auth_server.endpoint)
    for op in (lambda: store.get_bytes("m/latest.json"), lambda: store.put_bytes("m/x", b"x")):
        t0 = time.monotonic()
        with pytest.raises(StoreError) as info:
            op()
        _assert_clear(
            info.value, code, "s3://models/p/m/", auth_server.endpoint, elapsed=time.monotonic() - t0
        )


def test_local_store_os_errors_are_store_errors(tmp_path):
    store = LocalStore(tmp_path / "s")
    store.put_bytes("m/file", b"x")
    with pytest.raises(StoreError, match="cannot write"):
        store.put_bytes("m/file/below", b"y")  # a file where a directory should be
    with pytest.raises(StoreError, match="cannot write"):
        store.put_file("m/other", tmp_path / "no-such-source")
    with pytest.raises(ObjectNotFound):
        store.get_bytes("m/file/below")
    assert store.list("") == ["m/file"]
