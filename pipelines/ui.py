"""``make ui``: the Dagster UI plus a loopback artifact server, so sample grids and plots show inline.

Dagster renders an image in an asset's metadata without a click only when its markdown is short, i.e. a
link rather than an embedded PNG (pipelines/metadata.py). This serves the workspace's ``outputs/`` (PNG
files only, no listings) on 127.0.0.1 and starts ``dagster dev`` with ``GAN_ARTIFACT_BASE_URL`` pointing at
it; the run workers it launches inherit the variable.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipelines.metadata import ARTIFACT_BASE_URL


class _PngOnly(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if not self.path.split("?", 1)[0].endswith(".png"):
            self.send_error(404, "only images are served here")
            return
        super().do_GET()

    def list_directory(self, path):  # never list folders
        self.send_error(404)

    def log_message(self, format: str, *args) -> None:  # quiet: the UI fetches an image per page view
        pass


@contextmanager
def artifact_server(outputs: Path, port: int = 0) -> Iterator[str]:
    """Serve ``outputs`` on 127.0.0.1 (``port`` 0: any free one); yields the base URL."""
    outputs.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_PngOnly, directory=str(outputs)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    from pipelines.resources import Workspace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="the Dagster UI's port")
    parser.add_argument("--artifact-port", type=int, default=3001, help="the image server's port")
    args = parser.parse_args(argv)
    dagster = Path(sys.executable).with_name("dagster")
    with artifact_server(Workspace().path / "outputs", args.artifact_port) as url:
        env = {**os.environ, ARTIFACT_BASE_URL: url}
        print(f"images served from {url} (outputs/); Dagster UI on http://127.0.0.1:{args.port}", flush=True)
        cmd = [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(args.port)]
        try:
            return subprocess.call(cmd, env=env)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
