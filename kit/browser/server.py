"""A static file server on 127.0.0.1 only, with the COOP/COEP headers that give the page threads (SharedArrayBuffer).

Routes map URL prefixes to folders: /page/ (index.html, runner.mjs), /ort/ (onnxruntime-web's dist), /tjs/
(transformers.js's dist) and /work/ (the exported model and its inputs). The server runs in a daemon thread of the
process that measures, and stops with it.
"""

from __future__ import annotations

import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

LOOPBACK = "127.0.0.1"
ALLOWED_HOSTS = {"127.0.0.1", "localhost"}  # Host headers served: a page of another name pointed here is refused
MIME_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
              ".html": "text/html", ".json": "application/json", ".onnx": "application/octet-stream",
              ".bin": "application/octet-stream", ".map": "application/json"}
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store"}


class _Handler(SimpleHTTPRequestHandler):
    """Serves files under the route folders only, to requests whose Host is the loopback; anything else is 404
    (403 for another Host); folders are never listed."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def __init__(self, *args: Any, routes: dict[str, Path], **kwargs: Any) -> None:
        self.routes = routes
        super().__init__(*args, directory=str(next(iter(routes.values()))), **kwargs)

    def translate_path(self, path: str) -> str:
        """Map /<route>/<file> to the route's folder; paths escaping the folder map to a missing file."""
        parts = unquote(urlsplit(path).path).lstrip("/").split("/", 1)
        root = self.routes.get(parts[0])
        if root is None or len(parts) < 2 or "\x00" in parts[1]:
            return "/nonexistent"
        target = (root / parts[1]).resolve()
        return str(target) if target.is_relative_to(root.resolve()) else "/nonexistent"

    def list_directory(self, path: str | Any) -> None:
        """Folders are never listed."""
        self.send_error(404, "Not found")

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        """Serve a file to a request addressed to the loopback host only (no DNS rebinding)."""
        if self._host_allowed():
            super().do_GET()

    def do_HEAD(self) -> None:  # noqa: N802 - the base class's name
        """As GET, without the body."""
        if self._host_allowed():
            super().do_HEAD()

    def _host_allowed(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host in ALLOWED_HOSTS:
            return True
        self.send_error(403, "Forbidden host")
        return False

    def end_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: requests are not logged."""


class _QuietServer(ThreadingHTTPServer):
    """A threading server that ignores clients hanging up early (a closing browser), and reports other errors."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore dropped connections; print anything else as the base class does."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StaticServer:
    """A loopback HTTP server over route folders; `url(route, name)` gives the address of a file."""

    def __init__(self, routes: dict[str, Path]) -> None:
        self.routes = {name: Path(folder) for name, folder in routes.items()}
        self._httpd = _QuietServer((LOOPBACK, 0), partial(_Handler, routes=self.routes))
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="benchkit-static", daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        """http://127.0.0.1:<port>"""
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, route: str, name: str = "") -> str:
        """Address of a file under a route."""
        return f"{self.origin}/{route}/{name}"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> StaticServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
