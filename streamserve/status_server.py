"""``/metrics`` (Prometheus text format) and ``/healthz`` (JSON) over HTTP."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)

HealthFn = Callable[[], tuple[bool, dict[str, Any]]]


class StatusServer:
    """Serves metrics and health from a daemon thread. Binds 127.0.0.1 unless told otherwise."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: HealthFn) -> None:
        self._registry = registry
        self._health = health
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body = generate_latest(server._registry)
                    self._reply(200, CONTENT_TYPE_LATEST, body)
                elif path in ("/healthz", "/health"):
                    ok, detail = server._health()
                    body = json.dumps({"ok": ok, **detail}, default=str).encode()
                    self._reply(200 if ok else 503, "application/json", body)
                else:
                    self._reply(404, "text/plain", b"not found\n")

            def _reply(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("http: " + format, *args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="status-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    def start(self) -> StatusServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
