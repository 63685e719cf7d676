"""Which cameras are overdue for docking (R1: offload at least daily; R7: faults reported).

The one place of the overdue rule: `Service.devices()` (DeviceStatus.overdue),
`Service.overdue_devices()` (the compliance report, the daemon's hourly
check, bench/) all come here. A device is overdue when it is assigned now and

(a) it has not docked for `devices.overdue_hours` (default 24), counted from
    the later of its last docking and the start of its current assignment
    (a camera handed out an hour ago is not overdue) -- `not_docked`; or
(b) its last docking did not take all its footage and ended more than 24 h
    ago (the offload window of Art. 26) -- `incomplete_docking`: the session
    ended in a state other than `done` (`stopped`, `volume_gone`,
    `interrupted`), or some files failed (they stay on the camera), or the
    camera copy of some proven files could not be cleared (`wipe_failed`).
    A session still `running` is a docking in progress and not judged.

Files deliberately kept on the camera (`--keep-source`) do not make a
docking incomplete: their footage is in the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dockd.clock import isoformat_utc, parse_utc
from dockd.retention.compliance import OFFLOAD_WINDOW

REASON_NOT_DOCKED = "not_docked"
REASON_INCOMPLETE = "incomplete_docking"


def not_docked(
    last_docked: datetime | None, assigned_from: datetime, now: datetime, limit: timedelta
) -> bool:
    """Rule (a): an assigned camera has not docked for `limit`.

    Counted from the later of the last docking and the hand-out: a camera
    issued from the pool an hour ago is not overdue.
    """
    since = max(t for t in (last_docked, assigned_from) if t is not None)
    return now - since > limit


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else parse_utc(value)


@dataclass(frozen=True)
class LastSession:
    """What a device's newest docking session left behind."""

    id: int
    serial: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    failed: int = 0
    wipe_failed: int = 0
    failed_files: tuple[str, ...] = ()

    @property
    def incomplete(self) -> bool:
        """Did not take all the footage (a running session is not judged yet)."""
        if self.state == "running":
            return False
        return self.state != "done" or self.failed > 0 or self.wipe_failed > 0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "started_at": isoformat_utc(self.started_at),
            "ended_at": isoformat_utc(self.ended_at) if self.ended_at else None,
            "failed": self.failed,
            "wipe_failed": self.wipe_failed,
            "failed_files": list(self.failed_files),
        }


@dataclass(frozen=True)
class DeviceFacts:
    """One device of the registry, as far as the overdue rule needs it."""

    serial: str
    assigned: bool
    device_number: str | None = None
    officer: str | None = None
    unit: str | None = None
    last_docked: datetime | None = None
    assigned_from: datetime | None = None
    # Rule (a), `not_docked()` (Service.devices() puts it in DeviceStatus.overdue).
    not_docked: bool = False


@dataclass(frozen=True)
class OverdueDevice:
    serial: str
    device_number: str | None
    officer: str | None
    unit: str | None
    last_docked: datetime | None
    reasons: tuple[str, ...]
    # The later of the last docking and the hand-out: rule (a) counts from it.
    since: datetime | None
    hours_since: float | None
    # The incomplete last docking (rule b), else None.
    session: LastSession | None

    def why(self) -> str:
        parts: list[str] = []
        if REASON_NOT_DOCKED in self.reasons:
            if self.last_docked is None:
                parts.append(f"never docked, assigned {self.hours_since or 0:.1f} h ago")
            else:
                parts.append(f"not docked for {self.hours_since or 0:.1f} h")
        if self.session is not None:
            text = f"docking {self.session.id} ended {self.session.state}"
            if self.session.failed:
                text += f", {self.session.failed} file(s) not taken"
            if self.session.wipe_failed:
                text += f", {self.session.wipe_failed} camera copy(ies) not cleared"
            parts.append(text)
        return "; ".join(parts)

    def as_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "device_number": self.device_number,
            "officer": self.officer,
            "unit": self.unit,
            "last_docked": isoformat_utc(self.last_docked) if self.last_docked else None,
            "reasons": list(self.reasons),
            "since": isoformat_utc(self.since) if self.since else None,
            "hours_since": self.hours_since,
            "session": self.session.as_json() if self.session else None,
        }


def _count(summary: Mapping[str, Any], key: str) -> int:
    value = summary.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def last_sessions(rows: Iterable[Mapping[str, Any]]) -> dict[str, LastSession]:
    """The newest docking session (highest id) of each device, from `sessions` rows."""
    newest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        serial = str(row["device_serial"])
        if serial not in newest or int(row["id"]) > int(newest[serial]["id"]):
            newest[serial] = row
    result: dict[str, LastSession] = {}
    for serial, row in newest.items():
        raw = row.get("summary")
        summary: Any = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
        if not isinstance(summary, dict):
            summary = {}
        files = summary.get("failed_files") or []
        result[serial] = LastSession(
            id=int(row["id"]),
            serial=serial,
            state=str(row["state"]),
            started_at=_moment(row["started_at"]),
            ended_at=_moment(row["ended_at"]) if row.get("ended_at") else None,
            failed=max(_count(summary, "failed"), len(files)),
            wipe_failed=_count(summary, "wipe_failed"),
            failed_files=tuple(
                str(f.get("source_path", f)) if isinstance(f, dict) else str(f) for f in files
            ),
        )
    return result


def overdue_devices(
    devices: Iterable[DeviceFacts],
    sessions: Mapping[str, LastSession],
    now: datetime,
    window: timedelta = OFFLOAD_WINDOW,
) -> tuple[OverdueDevice, ...]:
    """The devices overdue for docking (see the module docstring), by serial."""
    found: list[OverdueDevice] = []
    for d in sorted(devices, key=lambda d: d.serial):
        if not d.assigned:
            continue
        reasons: list[str] = []
        if d.not_docked:
            reasons.append(REASON_NOT_DOCKED)
        last = sessions.get(d.serial)
        incomplete = None
        if (
            last is not None
            and last.incomplete
            and now - (last.ended_at or last.started_at) > window
        ):
            reasons.append(REASON_INCOMPLETE)
            incomplete = last
        if not reasons:
            continue
        marks = [t for t in (d.last_docked, d.assigned_from) if t is not None]
        since = max(marks) if marks else None
        found.append(
            OverdueDevice(
                serial=d.serial,
                device_number=d.device_number,
                officer=d.officer,
                unit=d.unit,
                last_docked=d.last_docked,
                reasons=tuple(reasons),
                since=since,
                hours_since=round((now - since).total_seconds() / 3600, 1) if since else None,
                session=incomplete,
            )
        )
    return tuple(found)
