"""The daemon's monitoring half: the dock's screen, `/healthz`, `/metrics` and its textfile.

Mixed into Daemon (daemon.py), which sets the attributes declared here. A
screen that cannot listen is logged and never stops a docking.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from dockd.clock import Clock
from dockd.config import Config
from dockd.service import Service

log = structlog.get_logger("dockd.daemon")


class Monitoring:
    config: Config
    clock: Clock
    service: Service | None
    _stopping: threading.Event
    _api: Any
    _screen: Any
    _uploader: Any  # runner/replication.py Uploader, when replicating

    if TYPE_CHECKING:  # defined by Daemon (daemon.py)

        def status(self) -> dict[str, Any]: ...

    def _start_screen(self) -> None:
        """The dock's screen on `screen.listen`. It failing (a port taken, a unit that
        allows no IP) is logged and never stops a docking."""
        address = self.config.screen.address()
        if address is None:
            return
        from dockd.runner.screen.app import ScreenServer, make_app

        app = make_app(self.status, self.health, self.clock, self.metrics_text)
        server = ScreenServer(app, *address)
        try:
            server.start()
        except OSError as exc:
            log.error("screen.unavailable", listen=self.config.screen.listen, reason=str(exc))
            server.stop()
            return
        self._screen = server

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
        if self._api is None:
            reasons.append("the socket API is not listening")
        cfg = self.config.replicate
        if cfg.enabled and self.service is not None:
            if self._uploader is not None and self._uploader.problem:
                reasons.append(f"replication: {self._uploader.problem}")
            if self.service.replication_status().behind(self.clock.now(), cfg.alert_after_hours):
                reasons.append(
                    f"replication: uploads waiting longer than {cfg.alert_after_hours} h"
                )
        return not reasons, reasons
