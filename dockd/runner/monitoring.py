"""The daemon's HTTP half: its server (the API, the dock's screen, the admin page),
`/healthz`, `/metrics` and its textfile.

Mixed into Daemon (daemon.py), which sets the attributes declared here. A
screen that cannot listen is logged and never stops a docking.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from dockd.access.roles import Identity
from dockd.clock import Clock
from dockd.config import Config
from dockd.runner.client import socket_path
from dockd.runner.openapi import openapi_document
from dockd.service import Service

log = structlog.get_logger("dockd.daemon")


class Monitoring:
    config: Config
    clock: Clock
    service: Service | None
    _stopping: threading.Event
    _front: Any
    _uploader: Any  # runner/replication.py Uploader, when replicating

    if TYPE_CHECKING:  # defined by Daemon (daemon.py)

        def status(self) -> dict[str, Any]: ...

        def handle(self, op: str, args: dict[str, Any], who: Identity) -> Any: ...

    def _start_front(self) -> None:
        """The HTTP server (front.py) on the Unix socket (the API: api.py) and on
        `screen.listen`. The socket failing stops the daemon (nobody could reach it);
        the screen's port failing (taken, not allowed) is logged and never stops a docking."""
        from dockd.runner.api import api_routes, bind_unix
        from dockd.runner.front import HttpServer, bind_tcp
        from dockd.runner.screen.app import make_app

        sockets = [bind_unix(socket_path(self.config), self.config.daemon.socket_group)]
        address = self.config.screen.address()
        if address is not None:
            try:
                sockets.append(bind_tcp(*address))
            except OSError as exc:
                log.error("screen.unavailable", listen=self.config.screen.listen, reason=str(exc))
        routes = api_routes(self.handle, openapi_document, self.admin_page)
        app = make_app(self.status, self.health, self.clock, self.metrics_text, routes)
        front = HttpServer(app, sockets)
        front.start()
        self._front = front
        log.info("api.listening", socket=str(socket_path(self.config)))
        if len(sockets) > 1:
            host, port = sockets[1].getsockname()[:2]
            log.info("screen.listening", host=host, port=port)

    def admin_page(self, who: Identity, lang: str) -> str:
        """`/admin`: the compliance page with its charts, for whom the report is
        (the permission table's `report.compliance`; a refusal is logged as any)."""
        page = self.handle("report.compliance", {"format": "html", "lang": lang}, who)
        return str(page["html"])

    def metrics_text(self) -> bytes:
        """`/metrics`: the Prometheus text of this dock (runner/metrics.py)."""
        from dockd.runner.metrics import registry, render

        assert self.service is not None
        return render(registry(self.status, self.service.figures, self.clock))

    def _write_metrics_file(self) -> None:
        textfile = self.config.metrics.textfile
        if not textfile or self.service is None:
            return
        from dockd.runner.metrics import registry, write_textfile

        try:
            write_textfile(registry(self.status, self.service.figures, self.clock), Path(textfile))
        except OSError as exc:
            log.error("metrics.textfile_failed", path=textfile, reason=str(exc))

    def health(self) -> tuple[bool, list[str]]:
        """Ready, or why not: what `/healthz` answers (a monitor's view of the dock)."""
        reasons = []
        if self._stopping.is_set():
            reasons.append("dockd is stopping")
        if self._front is None:
            reasons.append("the HTTP API is not listening")
        cfg = self.config.replicate
        if cfg.enabled and self.service is not None:
            if self._uploader is not None and self._uploader.problem:
                reasons.append(f"replication: {self._uploader.problem}")
            if self.service.replication_status().behind(self.clock.now(), cfg.alert_after_hours):
                reasons.append(
                    f"replication: uploads waiting longer than {cfg.alert_after_hours} h"
                )
        return not reasons, reasons
