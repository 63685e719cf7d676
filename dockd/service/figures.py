"""The dock's figures for monitoring (`/metrics`): aggregates read from catalog and store."""

from __future__ import annotations

from dataclasses import dataclass

from dockd.clock import parse_utc
from dockd.integrity.chain import LogEntry
from dockd.replicate.status import ReplicationStatus
from dockd.service.base import ServiceBase


@dataclass(frozen=True)
class Figures:
    recordings: int  # ever ingested (rows are never removed: a counter)
    bytes: int
    late: int  # offloaded after their 24 h window (R1)
    flagged: dict[str, int]  # live recordings per flag
    log_entries: int
    last_checkpoint_at: float | None  # seconds since the epoch
    last_audit_at: float | None
    last_audit_failures: int
    store_free_bytes: int
    replication: ReplicationStatus | None


class FiguresPart(ServiceBase):
    def figures(self) -> Figures:
        total, size, late, flags = self.catalog.ingest_figures()
        entries, _ = self.catalog.head()
        checkpoint = self.catalog.last_checkpoint()
        audit_raw = self.catalog.last_entry_of_kind("audit.done")
        audit = LogEntry.from_bytes(audit_raw) if audit_raw else None
        failures = audit.data.get("failures") if audit else None
        return Figures(
            recordings=total,
            bytes=size,
            late=late,
            flagged=flags,
            log_entries=entries,
            last_checkpoint_at=parse_utc(str(checkpoint["created_at"])).timestamp()
            if checkpoint
            else None,
            last_audit_at=parse_utc(audit.time).timestamp() if audit else None,
            last_audit_failures=len(failures) if isinstance(failures, list) else 0,
            store_free_bytes=self.store.free_bytes(),
            replication=self.replication_status() if self.config.replicate.enabled else None,
        )
