"""The compliance report with its charts, from the catalog in one pass (R8).

Read-only: the CLI (`dockd report compliance`) and the daemon's API
(`report.compliance`, the admin page) both come here, so the figures are one
computation whichever way they are asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from dockd.clock import isoformat_utc
from dockd.model import Recording
from dockd.retention import report as counting  # through the module: bench/ times it
from dockd.retention.charts import DELETION_WINDOWS, ChartsCounter, ReportCharts
from dockd.retention.continuity import GapExplanation, Interruption
from dockd.retention.overdue import OverdueDevice
from dockd.retention.report import ComplianceReport
from dockd.service.base import ServiceBase


class Reports(ServiceBase):
    if TYPE_CHECKING:  # the other parts of the Service

        def interruptions(self, serial: str | None = None) -> list[Interruption]: ...

        def gap_explanations(self) -> dict[str, list[GapExplanation]]: ...

        def overdue_devices(self) -> tuple[OverdueDevice, ...]: ...

        def upcoming(self, days: float, as_of: datetime | None = None) -> list[Recording]: ...

    def compliance(
        self, start: datetime | None = None, end: datetime | None = None, by: str = "unit"
    ) -> tuple[ComplianceReport, ReportCharts]:
        """The report of the recordings made in [start, end), as of the clock's now."""
        now = self.clock.now()
        counter = ChartsCounter(by, now, end)
        rows = self.catalog.compliance_rows(
            isoformat_utc(start) if start else None, isoformat_utc(end) if end else None
        )
        report = counting.compliance_report(
            counter.watch(rows),  # streamed: read while the catalog is open
            self.interruptions(),
            self.gap_explanations(),
            now,
            self.config.retention.label_after_days,
            by,
            start=start,
            end=end,
            overdue=self.overdue_devices(),
        )
        due: dict[int, Sequence[tuple[str | None, int]]] = {
            days: [(r.tier, r.size) for r in self.upcoming(days)] for days in DELETION_WINDOWS
        }
        return report, counter.charts(due)
