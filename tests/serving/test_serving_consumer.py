"""The example consumer service, in-process on a loopback ephemeral port."""

from __future__ import annotations

import importlib.util
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from serving_helpers import manifest_fields

from ganlib.store import publish

SERVICE = Path(__file__).resolve().parents[2] / "deploy" / "consumer" / "service.py"


def _load_service():
    spec = importlib.util.spec_from_file_location("gan_consumer_service", SERVICE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server(store, onnx_models, cache_dir):
    info = onnx_models["cond"]
    publish(store, "digits", "v1", info.path, manifest_fields(info))
    service = _load_service()
    srv = service.create_server(
        store.uri, "digits", host="127.0.0.1", port=0, device="cpu", cache_dir=str(cache_dir)
    )
    thread = service.serve_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)
    assert not thread.is_alive()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def test_service_serves_png_grids(server):
    status, ctype, body = _get(f"{server.url}/generate?n=4&seed=2&nrow=2")
    assert (status, ctype) == (200, "image/png")
    with Image.open(io.BytesIO(body)) as img:
        assert img.size == (2 * 34 + 2, 2 * 34 + 2)
    assert _get(f"{server.url}/generate?n=4&seed=2&nrow=2")[2] == body  # seeded: same request, same PNG

    status, ctype, body = _get(f"{server.url}/healthz")
    health = json.loads(body)
    assert status == 200 and health["version"] == "v1" and health["provider"] == "CPUExecutionProvider"
    assert health["sha256"] == server.pulled.sha256 and health["num_classes"] == 10


@pytest.mark.parametrize("query", ["n=0", "n=100000", "n=abc", "class_id=99"])
def test_service_rejects_bad_requests(server, query):
    status, ctype, body = _get(f"{server.url}/generate?{query}")
    assert status == 400 and ctype == "application/json" and "error" in json.loads(body)


def test_service_unknown_path(server):
    assert _get(f"{server.url}/nope")[0] == 404
