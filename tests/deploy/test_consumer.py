"""The example consumer service (deploy/consumer), in-process on a loopback ephemeral port: requests, errors,
and concurrent clients with and without dynamic batching."""

from __future__ import annotations

import http.client
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from concurrency import in_threads
from model_helpers import manifest_fields
from PIL import Image

from ganlib.serving import OnnxGenerator, make_grid, to_png
from ganlib.store import publish

pytestmark = pytest.mark.usefixtures("aws_env")  # fake AWS credentials, never the developer's

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


def _run_service(args: list[str], env_extra: dict[str, str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("HOST", "GAN_MODEL", "GAN_STORE_URI")}
    return subprocess.Popen(
        [sys.executable, "-u", str(SERVICE), *args],
        env={**env, **env_extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_readme_names_the_model_the_default_config_publishes() -> None:
    from ganlib.config import load_config

    readme = (SERVICE.parent / "README.md").read_text()
    named = set(re.findall(r"GAN_MODEL=([\w.-]+)", readme)) | set(
        re.findall(r'create_server\("[^"]+", "([\w.-]+)"', readme)
    )
    assert named == {load_config("default").export.model_name} == {"digits-dcgan"}


def test_missing_model_stops_the_service_with_one_line(tmp_path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    proc = _run_service(["--uri", str(store), "--model", "digits-dcgan", "--port", "0"], {})
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.splitlines() == [
        f"service: cannot serve 'digits-dcgan' from {store}: no published version of 'digits-dcgan' at "
        f"{store.as_uri()}: latest.json is missing"
    ]


def test_service_binds_loopback_by_default(tmp_path, onnx_models) -> None:
    from ganlib.store import open_store

    info = onnx_models["uncond"]
    publish(open_store(tmp_path / "store"), "digits-dcgan", "v1", info.path, manifest_fields(info))
    proc = _run_service(
        ["--port", "0", "--device", "cpu"],
        {
            "GAN_STORE_URI": str(tmp_path / "store"),
            "GAN_MODEL": "digits-dcgan",
            "GAN_CACHE_DIR": str(tmp_path / "c"),
        },
    )
    try:
        line = proc.stdout.readline()
        assert re.fullmatch(
            r"serving digits-dcgan v1 \(sha256 \w{12}\) on CPUExecutionProvider at http://127\.0\.0\.1:\d+\n",
            line,
        ), line
        url = line.rsplit(" at ", 1)[1].strip()
        assert json.loads(urllib.request.urlopen(url + "/healthz", timeout=30).read())["version"] == "v1"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture
def servers(onnx_models, tmp_path):
    """A batched and an unbatched service on loopback ephemeral ports, same model."""
    from ganlib.store import open_store

    store = open_store(tmp_path / "store")
    publish(store, "digits", "v1", onnx_models["cond"].path, manifest_fields(onnx_models["cond"]))
    service = _load_service()
    out = {}
    for mode, window in (("batched", 5.0), ("unbatched", None)):
        srv = service.create_server(
            store.uri,
            "digits",
            host="127.0.0.1",
            port=0,
            device="cpu",
            cache_dir=str(tmp_path / f"cache-{mode}"),
            batch_window_ms=window,
        )
        out[mode] = (srv, service.serve_in_thread(srv))
    yield {mode: srv for mode, (srv, _) in out.items()}
    for srv, thread in out.values():
        srv.shutdown()
        srv.server_close()
        thread.join(5)
        assert not thread.is_alive()


def _client(port: int, queries: list[str]) -> list[bytes]:
    """One keep-alive connection, requests one after another, as a real client would."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    bodies = []
    try:
        for q in queries:
            conn.request("GET", f"/generate?{q}")
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200 and resp.headers["Content-Type"] == "image/png", body[:200]
            bodies.append(body)
    finally:
        conn.close()
    return bodies


def test_service_concurrent_clients_get_their_own_pngs(servers, onnx_models):
    clients, per_client = 12, 3  # bounded: 36 requests per server
    queries = [
        [
            f"n={1 + (c + i) % 4}&seed={1000 + c * per_client + i}" + (f"&class_id={c % 10}" if c % 2 else "")
            for i in range(per_client)
        ]
        for c in range(clients)
    ]
    ports = {mode: srv.server_address[1] for mode, srv in servers.items()}
    batched = in_threads(_client, [(ports["batched"], q) for q in queries])
    unbatched = in_threads(_client, [(ports["unbatched"], q) for q in queries])
    assert batched == unbatched  # byte-identical PNGs, request by request

    # And both are what the generator makes for that query, computed here independently of the service.
    reference = OnnxGenerator(onnx_models["cond"].path, device="cpu")
    c, i = 3, 2
    n, seed = 1 + (c + i) % 4, 1000 + c * per_client + i
    assert batched[c][i] == to_png(make_grid(reference.generate(n, seed=seed, class_id=c % 10)))
    assert len({b for bodies in batched for b in bodies}) == clients * per_client
