"""Example downstream service: pulls the latest generator on start and serves PNG grids over HTTP.

Standard library HTTP server + ``ganlib.serving`` only (numpy, onnxruntime, boto3, pillow): no torch.

    GAN_STORE_URI=s3://models/gan GAN_MODEL=digits-dcgan python deploy/consumer/service.py --port 8080
    curl -o grid.png 'http://localhost:8080/generate?n=16&seed=3'

Endpoints: ``GET /generate?n=16&seed=0[&class_id=K][&nrow=4]`` -> image/png;
``GET /healthz`` -> JSON (model, version, sha256, provider). The model is pulled once at start; restart
(or roll the deployment) to pick up a new ``latest``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from ganlib.serving import (
    OnnxGenerator,
    ProviderError,
    PulledModel,
    StoreError,
    make_grid,
    pull,
    to_png,
)

MAX_N = 256


class GeneratorServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], pulled: PulledModel, generator: OnnxGenerator, model: str
    ) -> None:
        super().__init__(address, _Handler)
        self.pulled, self.generator, self.model = pulled, generator, model

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def create_server(
    uri: str,
    model: str,
    *,
    version: str = "latest",
    host: str = "127.0.0.1",
    port: int = 8080,
    device: str = "auto",
    cache_dir: str | None = None,
) -> GeneratorServer:
    """Pull (and verify) the model, load it, bind the socket. Call ``serve_forever()`` to serve."""
    pulled = pull(uri, model, version, cache_dir=cache_dir)
    generator = OnnxGenerator(pulled.path, device=device)  # type: ignore[arg-type]
    return GeneratorServer((host, port), pulled, generator, model)


class _Handler(BaseHTTPRequestHandler):
    server: GeneratorServer

    def log_message(self, format: str, *args: object) -> None:  # one quiet line per request
        if os.environ.get("GAN_SERVICE_ACCESS_LOG"):
            super().log_message(format, *args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), "application/json")

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/healthz":
            s = self.server
            info = {
                "model": s.model,
                "version": s.pulled.version,
                "sha256": s.pulled.sha256,
                "provider": s.generator.provider,
                "num_classes": s.generator.num_classes,
            }
            self._send(HTTPStatus.OK, json.dumps(info).encode(), "application/json")
        elif url.path == "/generate":
            self._generate(parse_qs(url.query))
        else:
            self._error(HTTPStatus.NOT_FOUND, f"unknown path {url.path}: use /generate or /healthz")

    def _generate(self, query: dict[str, list[str]]) -> None:
        try:
            n = int(query.get("n", ["16"])[0])
            seed = int(query.get("seed", ["0"])[0])
            class_id = int(query["class_id"][0]) if "class_id" in query else None
            nrow = int(query["nrow"][0]) if "nrow" in query else None
            if not 1 <= n <= MAX_N:
                raise ValueError(f"n must be in [1, {MAX_N}]")
            images = self.server.generator.generate(n, seed=seed, class_id=class_id)
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        self._send(HTTPStatus.OK, to_png(make_grid(images, nrow=nrow)), "image/png")


def serve_in_thread(server: GeneratorServer) -> threading.Thread:
    """Serve in a daemon thread (tests, notebooks); stop with ``server.shutdown(); server.server_close()``."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Serve PNG samples of the latest published generator.")
    p.add_argument("--uri", default=os.environ.get("GAN_STORE_URI"), help="store URI (env GAN_STORE_URI)")
    p.add_argument("--model", default=os.environ.get("GAN_MODEL"), help="model name (env GAN_MODEL)")
    p.add_argument("--version", default=os.environ.get("GAN_MODEL_VERSION", "latest"))
    # Loopback unless told otherwise: a container or a host that should be reachable sets HOST=0.0.0.0.
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    p.add_argument("--device", default=os.environ.get("GAN_DEVICE", "auto"), choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    if not args.uri or not args.model:
        p.error("--uri and --model (or GAN_STORE_URI and GAN_MODEL) are required")
    try:
        server = create_server(
            args.uri, args.model, version=args.version, host=args.host, port=args.port, device=args.device
        )
    except (StoreError, ProviderError, ValueError, OSError) as exc:  # one line, no traceback
        print(f"service: cannot serve {args.model!r} from {args.uri}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    g = server.generator
    print(
        f"serving {args.model} {server.pulled.version} (sha256 {server.pulled.sha256[:12]}) on {g.provider} at {server.url}"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
