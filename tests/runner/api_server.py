"""The daemon's HTTP API alone on a Unix socket, for tests: a handler in, a server out.

The same routes (runner/api.py), protocol (peer identity) and server
(runner/front.py) the daemon runs, without the rest of the daemon.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from starlette.applications import Starlette

from dockd.runner.api import Handler, api_routes, bind_unix
from dockd.runner.front import HttpServer
from dockd.runner.openapi import openapi_document


class ApiServer:
    def __init__(self, path: Path, handler: Handler, group: str = "dockd") -> None:
        self.path = path
        app = Starlette(routes=api_routes(handler, openapi_document, lambda who, lang: "admin"))
        self.http = HttpServer(app, [bind_unix(path, group)])

    def start(self) -> None:
        self.http.start()

    def stop(self) -> None:
        self.http.stop()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
