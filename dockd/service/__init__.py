"""The one writer of the catalog and the store.

Every front (CLI, daemon, socket, status page) calls this API; every change
it makes is one catalog transaction holding the change and its log entry
(DESIGN invariant 3). The order of writes of DESIGN §4a is kept here:
store object proven and renamed into place, then row + log entry in one
transaction, and only then may a caller delete the camera's copy.

A writing Service holds an exclusive lock on the state directory, so that
start-up recovery (which empties store/tmp) never races another writer.

`Service` is composed of one part per stage, each in its own module over
the shared state of base.py: ledger (lock, recovery, log, keys,
checkpoints, proofs), docking (sessions, staging, committing recordings),
registry (devices, assignments), labels (tags, cases, holds, gaps, spot
checks), retention (policy, plan, sweep, restore), exports (archival discs,
copy packages), fixity (audit, verify), access (requests, approvals,
views, copies, confidential marks, refusals), custody (the report) and
replication (the queue to the bucket, uploads, lock extensions).
Nothing below the service imports it.
"""

from __future__ import annotations

import threading

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dockd.catalog import Catalog, Recording
from dockd.clock import Clock
from dockd.config import Config
from dockd.errors import DockdError
from dockd.ingest.prober import Prober
from dockd.integrity.keys import host_id
from dockd.integrity.note import VerifierKey
from dockd.service.access import Access
from dockd.service.custody import Custody
from dockd.service.docking import Docking
from dockd.service.exports import Exports
from dockd.service.figures import FiguresPart
from dockd.service.fixity import Fixity
from dockd.service.labels import Labels
from dockd.service.ledger import EXPORT_README, Ledger
from dockd.service.registry import Registry
from dockd.service.replication import Replication
from dockd.service.reports import Reports
from dockd.service.retention import RETENTION_ENTRY_IDS, UNLINK_GROUP, Retention
from dockd.service.values import (
    FLAG_CHANGED,
    FLAG_EMPTY,
    FLAG_LATE,
    FLAG_UNASSIGNED,
    FLAG_UNREADABLE,
    REGISTRY_FLAGS,
    AuditReport,
    DeviceStatus,
    FileOutcome,
    IntegrityError,
    SessionInfo,
    Staged,
    StateBusyError,
    SweepReport,
    VerifyReport,
)
from dockd.store import Store

__all__ = [
    "EXPORT_README",
    "FLAG_CHANGED",
    "FLAG_EMPTY",
    "FLAG_LATE",
    "FLAG_UNASSIGNED",
    "FLAG_UNREADABLE",
    "REGISTRY_FLAGS",
    "RETENTION_ENTRY_IDS",
    "UNLINK_GROUP",
    "AuditReport",
    "DeviceStatus",
    "FileOutcome",
    "IntegrityError",
    "Service",
    "SessionInfo",
    "Staged",
    "StateBusyError",
    "SweepReport",
    "VerifyReport",
]


class Service(
    Ledger,
    Docking,
    Registry,
    Labels,
    Retention,
    Exports,
    Fixity,
    Access,
    Custody,
    Replication,
    FiguresPart,
    Reports,
):
    def __init__(
        self,
        config: Config,
        clock: Clock,
        *,
        write: bool = True,
        lock_wait_s: float = 30.0,
    ) -> None:
        self.config = config
        self.clock: Clock = clock  # required: nothing below the fronts reads the time
        self.state_dir = config.state_dir
        self._lock_fd = -1
        self._extend_due = threading.Event()
        cfg = config.ingest
        self._prober = Prober(
            cfg.ffprobe, cfg.ffprobe_timeout, cfg.probe_python, max(cfg.probe_ahead, 1)
        )
        try:
            self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise DockdError(
                f"{self.state_dir}: cannot create the state directory: {exc.strerror}"
            ) from None
        if write:
            self._lock(lock_wait_s)
        self.store = Store(self.state_dir / "store", config.ingest.min_free_bytes)
        self.catalog = Catalog(self.state_dir / "catalog.sqlite")
        self.origin = config.integrity.origin or f"dockd/{host_id()}"
        self._signer: tuple[Ed25519PrivateKey, VerifierKey] | None = None
        if write:
            self.recover()
            self._signer = self._load_signing_key()
            self.apply_retention_policy()
            self.queue_missing()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ----------------------------------------------------------------

    def recordings(self) -> list[Recording]:
        return self.catalog.recordings()

    def recording(self, recording_id: int) -> Recording | None:
        return self.catalog.recording(recording_id)

    def log_entry(self, seq: int) -> bytes | None:
        return self.catalog.log_entry(seq)
