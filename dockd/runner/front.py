"""The daemon's one HTTP server: uvicorn, in a thread, on every listener at once.

The listeners are bound here, before uvicorn starts, so that their modes and
owners are right from the first instant (api.bind_unix) and a port that is
taken is known at once: the Unix socket (the API, the admin page, and the
screen's routes for the dockd group) and, when `screen.listen` names one, the
screen's TCP address (127.0.0.1:8088; no identity there, so no API).
PeerProtocol gives each Unix connection its peer's Identity.
"""

from __future__ import annotations

import socket
import threading
import time

import structlog
import uvicorn
from starlette.applications import Starlette

from dockd.runner.api import PeerProtocol

log = structlog.get_logger("dockd.front")


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (OSError when it is taken or not allowed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """uvicorn serving `app` on `sockets` in a thread; `stop()` ends it."""

    def __init__(self, app: Starlette, sockets: list[socket.socket]) -> None:
        config = uvicorn.Config(
            app, http=PeerProtocol, log_config=None, access_log=False, lifespan="off",
            timeout_graceful_shutdown=2,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.app = app
        self.sockets = sockets
        self.thread = threading.Thread(
            target=self.server.run, args=(sockets,), name="dockd-http", daemon=True
        )

    @classmethod
    def tcp(cls, app: Starlette, host: str, port: int) -> HttpServer:
        return cls(app, [bind_tcp(host, port)])

    def start(self, wait_s: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + wait_s
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            raise OSError("the daemon's HTTP server did not start")
        log.info("http.listening", on=[_name(s) for s in self.sockets])

    def stop(self) -> None:
        closing = getattr(self.app.state, "closing", None)
        if closing is not None:
            closing.set()  # open event streams end, so that uvicorn stops at once
        self.server.should_exit = True
        self.thread.join(10)
        for sock in self.sockets:
            sock.close()


def _name(sock: socket.socket) -> str:
    where = sock.getsockname()
    return where if isinstance(where, str) else f"{where[0]}:{where[1]}"
