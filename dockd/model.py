"""The values that cross packages: a recording, the filter that finds it, its flags.

A leaf: it imports nothing of dockd, so that the stage packages
(`integrity/`, `retention/`, ...) can use these values without importing the
catalog, and the catalog can use them without importing a stage package
back. `dockd.catalog` re-exports `Recording` and `RecordingFilter`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# Flags a recording can carry; each marks something a supervisor must see.
FLAG_EMPTY = "empty"
FLAG_UNREADABLE = "unreadable_media"
FLAG_CHANGED = "changed_during_copy"
FLAG_LATE = "late"
# No assignment covered the recording's time: nobody is on record for it (R2).
FLAG_UNASSIGNED = "unassigned_device"
# Flags about the registry, not the footage: a session with only these
# succeeded (exit 0); supervisors see them in reports.
REGISTRY_FLAGS = frozenset({FLAG_UNASSIGNED})

# A recording's retention_state (docs/FORMAT.md "Retention").
LIVE = "live"
PENDING = "pending_deletion"
DELETED = "deleted"


@dataclass(frozen=True)
class Recording:
    """One row of the catalog's `recordings` table, decoded."""

    id: int
    sha256: str
    size: int
    source_path: bytes
    source_path_text: str
    source_mtime_ns: int
    store_path: str
    device_serial: str
    device_number: str | None
    profile: str
    officer: str | None
    sequence: int | None
    recorded_start: str
    recorded_end: str
    time_source: str
    clock_offset_s: int | None
    ingested_at: str
    deadline: str
    late: bool
    flags: tuple[str, ...]
    media: dict[str, Any]
    session_id: int | None
    log_seq: int
    unit: str | None = None
    # What the file name (or the session) said, before assignments were applied.
    name_officer: str | None = None
    name_device: str | None = None
    # Labels (schema 5): the recording's own; a linked case adds its own.
    cause: str | None = None
    parties: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    notes: tuple[dict[str, Any], ...] = ()
    # Retention (schema 5): docs/FORMAT.md "Retention".
    tier: str | None = None
    expires_at: str | None = None
    keep_until: str | None = None
    retention_state: str = LIVE
    pending_since: str | None = None
    deleted_at: str | None = None
    # Access (schema 7): state_secret | commercial_secret | privacy, or None.
    confidential: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Recording:
        values = dict(row)
        values["late"] = bool(values["late"])
        values["flags"] = tuple(json.loads(values["flags"]))
        values["media"] = json.loads(values["media"])
        values["source_path"] = bytes(values["source_path"])
        for name in ("parties", "categories", "notes"):
            values[name] = tuple(json.loads(values.get(name) or "[]"))
        return cls(**values)

    @property
    def deleted(self) -> bool:
        return self.retention_state == DELETED

    def as_json(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data["source_path"] = self.source_path_text
        for name in ("flags", "parties", "categories", "notes"):
            data[name] = list(data[name])
        if self.deleted:
            data["store_path"] = None  # a tombstone: the hash stays, the file is gone
        return data


@dataclass(frozen=True)
class RecordingFilter:
    """`dockd list` filters; empty ones match everything. Times are UTC ISO strings."""

    unit: str | None = None
    officer: str | None = None
    device: str | None = None
    start: str | None = None
    end: str | None = None
    cause: str | None = None
    parties: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    case: str | None = None
    tier: str | None = None
    flags: tuple[str, ...] = ()
    state: str | None = None
    unlabelled: bool = False
    limit: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
            if v not in (None, (), False)
        }
