"""Example downstream service: pulls the latest generator on start and serves PNG grids over HTTP.

Standard library HTTP server + ``ganlib.serving`` only (numpy, onnxruntime, boto3, pillow): no torch.

    GAN_STORE_URI=s3://models/gan GAN_MODEL=digits-dcgan python deploy/consumer/service.py --port 8080
    curl -o grid.png 'http://localhost:8080/generate?n=16&seed=3'

Endpoints: ``GET /generate?n=16&seed=0[&class_id=K][&nrow=4]`` -> image/png;
``GET /healthz`` -> JSON (model, version, sha256, provider). The model is pulled once at start; restart
(or roll the deployment) to pick up a new ``latest``.

Concurrent requests are batched (``ganlib.batching``): one ONNX Runtime run serves every request that
arrives within ``--batch-window-ms`` (env ``GAN_BATCH_WINDOW_MS``, default 2); ``--no-batching`` runs each
request on its own. Measured by ``python -m bench --only service``.
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

from ganlib.batching import BatchingGenerator
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
DEFAULT_BATCH_WINDOW_MS = 2.0


class GeneratorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog; the default 5 drops concurrent connects (1 s SYN retries)

    def __init__(
        self,
        address: tuple[str, int],
        pulled: PulledModel,
        generator: OnnxGenerator,
        model: str,
        batcher: BatchingGenerator | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.pulled, self.generator, self.model = pulled, generator, model
        self.batcher = batcher  # None: every request runs on its own

    def server_close(self) -> None:
        super().server_close()
        if self.batcher is not None:
            self.batcher.close()

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
    batch_window_ms: float | None = DEFAULT_BATCH_WINDOW_MS,
) -> GeneratorServer:
    """Pull (and verify) the model, load it, bind the socket. Call ``serve_forever()`` to serve.
    ``batch_window_ms=None`` serves each request on its own (no batching)."""
    pulled = pull(uri, model, version, cache_dir=cache_dir)
    # Batched, one thread runs the joined requests, so ONNX Runtime gets a thread per core; unbatched,
    # concurrent requests already spread over the cores (OnnxGenerator's default: 1). GAN_ORT_THREADS wins.
    threads = 0 if batch_window_ms is not None and not os.environ.get("GAN_ORT_THREADS") else None
    generator = OnnxGenerator(pulled.path, device=device, threads=threads)  # type: ignore[arg-type]
    batcher = None if batch_window_ms is None else BatchingGenerator(generator, batch_window_ms)
    return GeneratorServer((host, port), pulled, generator, model, batcher)


class _Handler(BaseHTTPRequestHandler):
    server: GeneratorServer
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

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
                "batch_window_ms": s.batcher.window_ms if s.batcher else None,
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
            images = (self.server.batcher or self.server.generator).generate(n, seed=seed, class_id=class_id)
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
    p.add_argument("--batch-window-ms", type=float, help="env GAN_BATCH_WINDOW_MS (default 2)")
    p.add_argument("--no-batching", action="store_true", help="run each request on its own")
    args = p.parse_args(argv)
    if args.batch_window_ms is None:
        window = os.environ.get("GAN_BATCH_WINDOW_MS", str(DEFAULT_BATCH_WINDOW_MS))
        try:
            args.batch_window_ms = float(window)
        except ValueError:
            p.error(f"GAN_BATCH_WINDOW_MS must be a number of milliseconds, got {window!r}")
    if args.batch_window_ms < 0:
        p.error(f"the batch window must be >= 0 ms, got {args.batch_window_ms}")
    if not args.uri or not args.model:
        p.error("--uri and --model (or GAN_STORE_URI and GAN_MODEL) are required")
    try:
        server = create_server(
            args.uri,
            args.model,
            version=args.version,
            host=args.host,
            port=args.port,
            device=args.device,
            batch_window_ms=None if args.no_batching else args.batch_window_ms,
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
