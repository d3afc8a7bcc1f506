"""The HTTP server under the app: uvicorn with uvloop and httptools (chosen by measurement,
docs/BENCHMARKS.md), on a socket bound once, in a thread of this process or in worker
processes that share the socket."""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

import uvicorn

from streamserve.settings import ApiSettings

logger = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port), inheritable by worker processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"api: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url(sock: socket.socket, api: ApiSettings) -> str:
    host, port = sock.getsockname()[:2]
    scheme = "https" if api.tls_certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def config(app: Any, api: ApiSettings) -> uvicorn.Config:
    password = api.tls_keyfile_password.get() if api.tls_keyfile_password else None
    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        ssl_certfile=api.tls_certfile,
        ssl_keyfile=api.tls_keyfile,
        ssl_keyfile_password=password,
    )


def serve_until(app: Any, sock: socket.socket, api: ApiSettings, stop: threading.Event) -> None:
    """Serve ``app`` on ``sock`` in this thread until ``stop`` is set."""
    server = uvicorn.Server(config(app, api))

    def stopper() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=stopper, name="api-stopper", daemon=True).start()
    server.run(sockets=[sock])
    if not stop.is_set():
        raise RuntimeError("api: the HTTP server stopped by itself")


def serve_forever(app: Any, sock: socket.socket, api: ApiSettings) -> None:
    """Serve in a worker process's main thread; SIGTERM and SIGINT stop it gracefully."""
    uvicorn.Server(config(app, api)).run(sockets=[sock])
