"""The values the Service's parts share and hand to its callers: flags, errors, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockd.catalog import Recording
from dockd.clock import isoformat_utc
from dockd.devices.registry import Assignment
from dockd.errors import DockdError
from dockd.ingest.copier import Copy
from dockd.ingest.scanner import FoundFile
from dockd.ingest.volume import FileIdentity
from dockd.integrity.chain import Problem

# A recording's flags are defined once, in dockd.model; re-exported here for
# the service's parts and `from dockd.service import FLAG_...`.
from dockd.model import (
    FLAG_CHANGED,
    FLAG_EMPTY,
    FLAG_LATE,
    FLAG_UNASSIGNED,
    FLAG_UNREADABLE,
    REGISTRY_FLAGS,
)
from dockd.retention.plan import Plan

__all__ = [
    "FLAG_CHANGED",
    "FLAG_EMPTY",
    "FLAG_LATE",
    "FLAG_UNASSIGNED",
    "FLAG_UNREADABLE",
    "REGISTRY_FLAGS",
    "AuditReport",
    "DeviceStatus",
    "FileOutcome",
    "IntegrityError",
    "SessionInfo",
    "Staged",
    "StateBusyError",
    "SweepReport",
    "VerifyReport",
]


class StateBusyError(DockdError):
    exit_code = 4


class IntegrityError(DockdError):
    """The log is not what an earlier checkpoint signed."""


@dataclass(frozen=True)
class SessionInfo:
    id: int
    serial: str
    profile: str
    source: str
    wipe: bool
    officer: str | None = None
    clock_offset_s: int | None = None


@dataclass(frozen=True)
class DeviceStatus:
    """One device of the registry, as `dockd device list` shows it."""

    serial: str
    vendor: str
    model: str
    profile: str
    first_seen: str
    last_docked: str | None
    last_slot: str | None
    recordings: int
    current: Assignment | None
    history: tuple[Assignment, ...]
    # Assigned, and not docked within devices.overdue_hours (R1: offload daily).
    overdue: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "vendor": self.vendor,
            "model": self.model,
            "profile": self.profile,
            "first_seen": self.first_seen,
            "last_docked": self.last_docked,
            "last_slot": self.last_slot,
            "recordings": self.recordings,
            "assigned_to": self.current.as_json() if self.current else None,
            "history": [a.as_json() for a in self.history],
            "overdue": self.overdue,
        }


@dataclass(frozen=True)
class FileOutcome:
    """What became of one camera file in a session."""

    status: str  # "ingested" | "duplicate"
    found: FoundFile
    recording: Recording
    # The source may be deleted: its bytes are proven in the store and it did
    # not change while being read. `seen` is what it must still look like.
    may_wipe: bool
    seen: FileIdentity


@dataclass(frozen=True)
class Staged:
    """A file copied from the camera, awaiting its proof (the read-back), its move
    into the store, its probe and its row."""

    found: FoundFile
    copy: Copy
    flags: tuple[str, ...]


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    recordings: int
    objects: int
    bytes_hashed: int
    problems: tuple[Problem, ...] = field(default=())
    # Intact objects no row refers to yet: left by a crash, adopted next docking.
    orphans: tuple[str, ...] = field(default=())
    # What the log was held against off the box (replication's bucket), or why not.
    anchor: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class SweepReport:
    plan: Plan
    marked: tuple[int, ...]
    deleted: tuple[int, ...]
    objects_removed: tuple[str, ...]
    dry_run: bool = False

    def summary(self) -> dict[str, Any]:
        """Counts and ids, without the plan's details (small enough for the socket)."""
        return {
            "dry_run": self.dry_run,
            "as_of": isoformat_utc(self.plan.as_of),
            "policy_version": self.plan.policy_version,
            "marked_pending": list(self.marked),
            "deleted": list(self.deleted),
            "objects_removed": len(self.objects_removed),
            "waiting": len(self.plan.waiting),
            "protected": len(self.plan.protected),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "plan": self.plan.as_json(),
            "marked_pending": list(self.marked),
            "deleted": list(self.deleted),
            "objects_removed": list(self.objects_removed),
        }


@dataclass(frozen=True)
class AuditReport:
    checked: int
    bytes_hashed: int
    store_objects: int
    failures: tuple[dict[str, Any], ...]
    log_seq: int

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes_hashed": self.bytes_hashed,
            "store_objects": self.store_objects,
            "failures": list(self.failures),
            "log_entry": self.log_seq,
        }


@dataclass(frozen=True)
class Upload:
    """One claimed row of the replication queue (docs/FORMAT.md "Schema 8")."""

    key: str
    kind: str  # object | log | checkpoint | key | session
    ref: str
    attempts: int  # this try's number
