"""The store against tampering and partial failure: manifests bound to their keys, latest.json checked
against the manifest, one-line errors for broken manifests, an idempotent publish, no retry of refused
credentials."""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from model_helpers import manifest_fields
from s3_server import moto_server_process
from test_serving_pull import _overwrite_raw

from ganlib.serving import ChecksumError, ManifestError, pull
from ganlib.serving_cli import main as generate_main
from ganlib.store import (
    AuthError,
    LatestNotMovedError,
    VersionExistsError,
    open_store,
    publish,
    read_latest,
)

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's


def _tree(store) -> dict[str, str]:
    return {k: hashlib.sha256(store.get_bytes(k)).hexdigest() for k in store.list("")}


def test_manifest_copied_to_another_models_key_does_not_serve_its_bytes(store, onnx_models, cache_dir):
    """An attacker with write access to `alpha/` copies beta's manifest there: pull(alpha) must not fetch
    beta's generator.onnx (the old code built the ONNX key from the manifest's own fields)."""
    publish(store, "alpha", "v1", onnx_models["cond"].path, manifest_fields(onnx_models["cond"]))
    publish(store, "beta", "v1", onnx_models["uncond"].path, manifest_fields(onnx_models["uncond"]))
    _overwrite_raw(store, "alpha/v1/manifest.json", store.get_bytes("beta/v1/manifest.json"))
    latest_beta = json.loads(store.get_bytes("beta/latest.json"))
    _overwrite_raw(store, "alpha/latest.json", json.dumps({**latest_beta, "model": "alpha"}).encode())

    with pytest.raises(ManifestError) as err:
        pull(store.uri, "alpha", cache_dir=cache_dir)
    assert str(err.value) == (
        f"{store.uri_for('alpha/v1/manifest.json')} names model 'beta', but it was read from the key of "
        "model 'alpha': refusing it"
    )
    assert not cache_dir.exists() or not any(p.is_file() for p in cache_dir.rglob("*"))


def test_manifest_rewritten_to_match_tampered_bytes_is_caught_by_latest(store, onnx_models, cache_dir):
    info = onnx_models["cond"]
    publish(store, "digits", "v1", info.path, manifest_fields(info))
    published_sha = json.loads(store.get_bytes("digits/latest.json"))["sha256"]
    evil = info.path.read_bytes() + b"\0"  # other bytes, with a manifest rewritten to match them
    manifest = json.loads(store.get_bytes("digits/v1/manifest.json"))
    manifest.update(sha256=hashlib.sha256(evil).hexdigest(), size=len(evil))
    _overwrite_raw(store, "digits/v1/generator.onnx", evil)
    _overwrite_raw(store, "digits/v1/manifest.json", json.dumps(manifest).encode())

    with pytest.raises(ChecksumError) as err:
        pull(store.uri, "digits", cache_dir=cache_dir)
    assert str(err.value).startswith(
        f"{store.uri_for('digits/latest.json')} says sha256 {published_sha} / {info.path.stat().st_size} "
        f"bytes, but the manifest of digits/v1 says {manifest['sha256']} / {len(evil)} bytes"
    )
    assert not cache_dir.exists() or not any(p.is_file() for p in cache_dir.rglob("*"))


@pytest.mark.parametrize(
    ("key", "content", "message"),
    [
        ("digits/v1/manifest.json", b"{not json", "is not valid JSON: Expecting property name"),
        ("digits/latest.json", b"[1, 2]", "is not a JSON object"),
        ("digits/v1/manifest.json", "drop:sha256", "lacks the field(s) sha256"),
        ("digits/latest.json", "drop:version", "lacks the field(s) version"),
    ],
)
def test_broken_manifest_gives_one_line_naming_the_file(
    store, onnx_models, cache_dir, capsys, key: str, content, message: str
) -> None:
    info = onnx_models["cond"]
    publish(store, "digits", "v1", info.path, manifest_fields(info))
    if isinstance(content, str):  # drop one field from the real document
        doc = json.loads(store.get_bytes(key))
        del doc[content.split(":")[1]]
        content = json.dumps(doc).encode()
    _overwrite_raw(store, key, content)

    code = generate_main(["--uri", store.uri, "--model", "digits", "--cache-dir", str(cache_dir)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [
        f"gan-generate: {store.uri_for(key)} {message}" + err.split(message, 1)[1].rstrip()
    ]
    assert "Traceback" not in err and "KeyError" not in err


def test_publish_is_idempotent_and_other_bytes_are_still_refused(store, onnx_models):
    info = onnx_models["cond"]
    first = publish(store, "digits", "v1", info.path, manifest_fields(info))
    manifest_before = store.get_bytes("digits/v1/manifest.json")
    again = publish(store, "digits", "v1", info.path, manifest_fields(info))
    assert (again.version, again.sha256, again.latest_version, again.latest_moved) == (
        "v1",
        first.sha256,
        "v1",
        True,
    )
    assert store.get_bytes("digits/v1/manifest.json") == manifest_before  # the committed manifest stands
    before = _tree(store)
    with pytest.raises(VersionExistsError, match=r"already exists .* with other bytes"):
        publish(store, "digits", "v1", onnx_models["uncond"].path, manifest_fields(onnx_models["uncond"]))
    assert _tree(store) == before


_ALLOW = {"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}
_DENY_LATEST = {"Effect": "Deny", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::*/latest.json"}


def _count_requests(store) -> list[str]:
    """Every HTTP request the store's real boto3 client sends, as 'METHOD url'."""
    sent: list[str] = []
    store._client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(request.method + " " + request.url)
    )
    return sent


def _client(service: str, srv):
    return boto3.client(
        service,
        endpoint_url=srv.endpoint,
        region_name="us-east-1",
        aws_access_key_id=srv.access_key_id,
        aws_secret_access_key=srv.secret_access_key,
    )


def test_latest_move_denied_after_commit_then_rerun_moves_it(onnx_models, monkeypatch):
    info = onnx_models["cond"]
    policy = {"Version": "2012-10-17", "Statement": [_ALLOW, _DENY_LATEST]}
    with moto_server_process(auth=True, policy=policy) as srv:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", srv.access_key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", srv.secret_access_key)
        _client("s3", srv).create_bucket(Bucket="models-x")
        store = open_store("s3://models-x/gan", endpoint_url=srv.endpoint)
        sent = _count_requests(store)

        with pytest.raises(LatestNotMovedError) as err:
            publish(store, "digits", "v1", info.path, manifest_fields(info))
        msg = str(err.value)
        assert msg.startswith(
            f"digits/v1 is committed and verified at {store.uri_for('digits/v1/manifest.json')} (safely stored), "
            f"but moving {store.uri_for('digits/latest.json')} failed: access denied (AccessDenied)"
        )
        assert msg.endswith("Publish the same version again to move the pointer (publishing is idempotent)")
        assert "\n" not in msg and err.value.permanent
        latest_puts = [r for r in sent if r.startswith("PUT") and r.endswith("/latest.json")]
        assert len(latest_puts) == 1  # AccessDenied is permanent: not retried
        assert read_latest(store, "digits") is None
        assert store.exists("digits/v1/manifest.json") and store.exists("digits/v1/generator.onnx")

        # The operator fixes the permission; publishing the same version again moves the pointer.
        _client("iam", srv).put_user_policy(
            UserName="tester",
            PolicyName="test",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [_ALLOW]}),
        )
        manifest = store.get_bytes("digits/v1/manifest.json")
        result = publish(store, "digits", "v1", info.path, manifest_fields(info))
        assert (result.latest_version, result.latest_moved) == ("v1", True)
        assert read_latest(store, "digits")["version"] == "v1"
        assert store.get_bytes("digits/v1/manifest.json") == manifest


@pytest.mark.parametrize("which", ["InvalidAccessKeyId", "AccessDenied"])
def test_refused_credentials_fail_at_once_without_retry(onnx_models, monkeypatch, which: str):
    info = onnx_models["cond"]
    with moto_server_process(auth=True) as srv:  # the user has no policy: authenticated, denied everything
        key_id = srv.access_key_id if which == "AccessDenied" else "AKIANOSUCHKEY0000000"
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", srv.secret_access_key)
        store = open_store("s3://models-x/gan", endpoint_url=srv.endpoint, max_attempts=4)
        sent = _count_requests(store)
        with pytest.raises(AuthError, match=rf"^access denied \({which}\) to "):
            publish(store, "digits", "v1", info.path, manifest_fields(info))
        assert len(sent) == 1, sent
