"""The publish protocol: layout, immutability, invisibility of partial publishes, concurrent publishes."""

from __future__ import annotations

import json
import threading

import pytest
from model_helpers import manifest_fields

from ganlib.serving import pull
from ganlib.store import (
    InvalidNameError,
    StoreError,
    VersionExistsError,
    list_versions,
    publish,
    read_latest,
    read_manifest,
    set_latest,
    sha256_file,
)

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's


def test_publish_layout_and_manifest(store, onnx_models):
    info = onnx_models["cond"]
    res = publish(store, "digits", "v1", info.path, manifest_fields(info))
    sha, size = sha256_file(info.path)
    assert (res.version, res.sha256, res.size, res.latest_version, res.latest_moved) == (
        "v1",
        sha,
        size,
        "v1",
        True,
    )
    assert res.uri == store.uri_for("digits/v1/generator.onnx")
    assert store.list("digits/") == [
        "digits/latest.json",
        "digits/v1/generator.onnx",
        "digits/v1/manifest.json",
    ]

    m = read_manifest(store, "digits", "v1")
    assert m["schema_version"] == 1 and (m["model"], m["version"], m["sha256"], m["size"]) == (
        "digits",
        "v1",
        sha,
        size,
    )
    assert m["opset"] == info.opset == 18
    assert m["inputs"] == [
        {"name": "z", "dtype": "float32", "shape": ["N", 16]},
        {"name": "class_id", "dtype": "int64", "shape": ["N"]},
    ]
    assert m["outputs"] == [{"name": "image", "dtype": "float32", "shape": ["N", 1, 32, 32]}]
    assert m["fid"] == {"value": 12.5, "backbone": "domain:d474"}
    assert m["data_hash"] == "d474" and m["git_commit"] == "0" * 40
    assert len(m["config_hash"]) == 64 and m["config"]["train"]["steps"] == 10
    assert m["created_at"].endswith("+00:00") and m["extra"] == {"parity_max_abs_err": 1e-7}

    latest = read_latest(store, "digits")
    assert (latest["version"], latest["sha256"], latest["manifest"]) == ("v1", sha, "digits/v1/manifest.json")
    assert read_latest(store, "other") is None
    assert list_versions(store, "digits") == ["v1"]


def test_republishing_a_version_is_refused(store, onnx_models):
    cond, uncond = onnx_models["cond"], onnx_models["uncond"]
    publish(store, "digits", "v1", cond.path, manifest_fields(cond))
    with pytest.raises(VersionExistsError, match="immutable"):
        publish(store, "digits", "v1", uncond.path, manifest_fields(uncond))
    # The existing version is untouched, bytes included.
    assert read_manifest(store, "digits", "v1")["sha256"] == sha256_file(cond.path)[0]
    assert store.get_bytes("digits/v1/generator.onnx") == cond.path.read_bytes()


class FailingManifestStore:
    """Delegates to a real store but dies when writing any manifest: a publish killed half way."""

    def __init__(self, inner):
        self.inner = inner
        self.uri = inner.uri

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def put_bytes(self, key, data, **kw):
        if key.endswith("/manifest.json"):
            raise StoreError("simulated crash before the manifest was written")
        return self.inner.put_bytes(key, data, **kw)


def test_partial_publish_is_never_visible(store, onnx_models, cache_dir):
    cond, uncond = onnx_models["cond"], onnx_models["uncond"]
    publish(store, "digits", "v1", cond.path, manifest_fields(cond))
    with pytest.raises(StoreError, match="simulated crash"):
        publish(FailingManifestStore(store), "digits", "v2", uncond.path, manifest_fields(uncond))

    assert store.exists("digits/v2/generator.onnx")  # the orphan upload really happened...
    assert read_latest(store, "digits")["version"] == "v1"  # ...but latest never moved
    assert list_versions(store, "digits") == ["v1"]  # and v2 is not a committed version
    pulled = pull(store.uri, "digits", cache_dir=cache_dir)
    assert (pulled.version, pulled.sha256) == ("v1", sha256_file(cond.path)[0])

    # The orphan's version cannot be taken by other bytes (it might be a concurrent publisher's)...
    with pytest.raises(VersionExistsError, match="no manifest"):
        publish(store, "digits", "v2", cond.path, manifest_fields(cond))
    assert store.get_bytes("digits/v2/generator.onnx") == uncond.path.read_bytes()
    # ...but a retry with the same bytes completes it.
    res = publish(store, "digits", "v2", uncond.path, manifest_fields(uncond))
    assert res.latest_version == "v2"
    assert pull(store.uri, "digits", cache_dir=cache_dir).sha256 == sha256_file(uncond.path)[0]


def _publish_concurrently(store, jobs):
    """Run publish(*job) for each job at the same moment; return the results or exceptions, in order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(i, job):
        barrier.wait()
        try:
            results[i] = publish(store, *job)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_publishes_of_two_versions(store, onnx_models, cache_dir):
    cond, uncond = onnx_models["cond"], onnx_models["uncond"]
    for round_ in range(3):
        model = f"m{round_}"
        jobs = [
            (model, "a", cond.path, manifest_fields(cond, created_at="2025-01-01T00:00:00+00:00")),
            (model, "b", uncond.path, manifest_fields(uncond, created_at="2025-01-02T00:00:00+00:00")),
        ]
        results = _publish_concurrently(store, jobs)
        assert all(not isinstance(r, Exception) for r in results), results
        # latest is on the newer version whatever the finishing order, and it is complete.
        latest = read_latest(store, model)
        assert latest["version"] == "b"
        pulled = pull(store.uri, model, cache_dir=cache_dir)
        assert pulled.sha256 == sha256_file(uncond.path)[0] == read_manifest(store, model, "b")["sha256"]
        assert list_versions(store, model) == ["a", "b"]


def test_concurrent_publishes_of_one_version(store, onnx_models, cache_dir):
    cond, uncond = onnx_models["cond"], onnx_models["uncond"]
    jobs = [
        ("race", "v1", cond.path, manifest_fields(cond)),
        ("race", "v1", uncond.path, manifest_fields(uncond)),
    ]
    results = _publish_concurrently(store, jobs)
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, Exception)]
    # One publisher commits, the other is refused without touching the winner's bytes.
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], VersionExistsError), losers
    pulled = pull(store.uri, "race", cache_dir=cache_dir)
    assert pulled.sha256 == winners[0].sha256 == read_manifest(store, "race", "v1")["sha256"]


def test_latest_only_moves_forward_and_set_latest_rolls_back(store, onnx_models):
    cond, uncond = onnx_models["cond"], onnx_models["uncond"]
    publish(
        store, "digits", "v2", uncond.path, manifest_fields(uncond, created_at="2025-02-01T00:00:00+00:00")
    )
    late = publish(
        store, "digits", "v1", cond.path, manifest_fields(cond, created_at="2025-01-01T00:00:00+00:00")
    )
    assert (late.latest_moved, late.latest_version) == (False, "v2")
    assert read_latest(store, "digits")["version"] == "v2"

    assert set_latest(store, "digits", "v1")["version"] == "v1"  # explicit rollback
    assert read_latest(store, "digits")["version"] == "v1"
    with pytest.raises(StoreError, match="does not exist"):
        set_latest(store, "digits", "v9")


@pytest.mark.parametrize(
    ("model", "version"),
    [
        ("../escape", "v1"),
        ("a/b", "v1"),
        ("", "v1"),
        (".hidden", "v1"),
        ("-dash", "v1"),
        ("x" * 129, "v1"),
        ("digits", "a..b"),
        ("digits", "v1/../../x"),
        ("digits", "/abs"),
        ("digits", "latest"),
        ("digits", "v 1"),
    ],
)
def test_bad_names_rejected(store, onnx_models, model, version):
    info = onnx_models["cond"]
    with pytest.raises(InvalidNameError, match="invalid"):
        publish(store, model, version, info.path, manifest_fields(info))
    assert store.list("") == []  # nothing was written


def test_manifest_fields_validated(store, onnx_models):
    info = onnx_models["cond"]
    with pytest.raises(ValueError, match="extra"):
        publish(store, "digits", "v1", info.path, manifest_fields(info, fidd=1))
    with pytest.raises(ValueError, match="ISO 8601"):
        publish(store, "digits", "v1", info.path, manifest_fields(info, created_at="yesterday"))
    fields = manifest_fields(info)
    del fields["opset"]
    with pytest.raises(ValueError, match="required"):
        publish(store, "digits", "v1", info.path, fields)
    assert store.list("") == []


def test_manifest_is_plain_json(store, onnx_models):
    info = onnx_models["uncond"]
    publish(store, "digits", "v1", info.path, manifest_fields(info))
    raw = json.loads(store.get_bytes("digits/v1/manifest.json"))
    assert raw == read_manifest(store, "digits", "v1")
