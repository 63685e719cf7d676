"""Who carried which camera when (seed rule R2): pure assignment arithmetic.

Assignments are never edited or deleted. A new one is appended with its
validity period, and at any instant the newest assignment whose period
covers it wins. History therefore stays readable, a correction is one more
record, and the answer never depends on the order in which rows are read.
An assignment with no officer is an explicit "in the pool, nobody's".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dockd.clock import isoformat_utc, parse_utc
from dockd.model import FLAG_UNASSIGNED


@dataclass(frozen=True)
class Assignment:
    id: int
    serial: str
    officer: str | None  # None: the device was returned (unassigned) for this period
    unit: str | None
    device_number: str | None
    valid_from: datetime
    valid_to: datetime | None  # exclusive; None: open-ended
    created_at: datetime
    log_seq: int

    def covers(self, moment: datetime) -> bool:
        return self.valid_from <= moment and (self.valid_to is None or moment < self.valid_to)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Assignment:
        return cls(
            id=int(row["id"]),
            serial=str(row["serial"]),
            officer=row["officer"],
            unit=row["unit"],
            device_number=row["device_number"],
            valid_from=parse_utc(row["valid_from"]),
            valid_to=parse_utc(row["valid_to"]) if row["valid_to"] else None,
            created_at=parse_utc(row["created_at"]),
            log_seq=int(row["log_seq"]),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "serial": self.serial,
            "officer": self.officer,
            "unit": self.unit,
            "device_number": self.device_number,
            "valid_from": isoformat_utc(self.valid_from),
            "valid_to": isoformat_utc(self.valid_to) if self.valid_to else None,
            "created_at": isoformat_utc(self.created_at),
            "log_seq": self.log_seq,
        }


@dataclass(frozen=True)
class Attribution:
    """Officer, unit and device number of one recording, and where they came from."""

    officer: str | None
    unit: str | None
    device_number: str | None
    assignment: int | None  # the assignment id, None when no assignment covered the time

    @property
    def assigned(self) -> bool:
        return self.assignment is not None


def assignment_at(assignments: Iterable[Assignment], moment: datetime) -> Assignment | None:
    """The assignment in force at `moment`: the newest registered one covering it.

    An unassignment (officer None) in force means nobody: None.
    """
    covering = [a for a in assignments if a.covers(moment)]
    if not covering:
        return None
    newest = max(covering, key=lambda a: a.id)
    return newest if newest.officer is not None else None


def attribute(
    assignments: Iterable[Assignment],
    moment: datetime,
    *,
    name_officer: str | None,
    name_device: str | None,
) -> Attribution:
    """Attribution of a recording made at `moment` (its start, not its docking).

    The assignment wins over what the file name claims: names are set on the
    camera and travel with it when it changes hands.
    """
    found = assignment_at(assignments, moment)
    if found is None:
        return Attribution(name_officer, None, name_device, None)
    return Attribution(found.officer, found.unit, found.device_number or name_device, found.id)


@dataclass(frozen=True)
class Labels:
    """What the registry decides about one recording: who, which unit, which number, flags."""

    officer: str | None
    unit: str | None
    device_number: str | None
    assignment: int | None  # the assignment in force, None when none covered the moment
    flags: tuple[str, ...]  # sorted


def labels_for(
    assignments: Iterable[Assignment],
    moment: datetime,
    *,
    name_officer: str | None,
    name_device: str | None,
    flags: Iterable[str],
) -> Labels:
    """The attribution rule, the one place it lives (ingest, re-attribution, verify).

    Officer, unit and number come from `attribute`; `unassigned_device` is
    set exactly when no assignment covered `moment`, whatever the other flags.
    """
    who = attribute(assignments, moment, name_officer=name_officer, name_device=name_device)
    kept = set(flags) - {FLAG_UNASSIGNED}
    if not who.assigned:
        kept.add(FLAG_UNASSIGNED)
    return Labels(who.officer, who.unit, who.device_number, who.assignment, tuple(sorted(kept)))


def logged_names(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The file name's officer and device number as a `recording.ingested` entry gives them.

    Entries from before the registry (schema < 4) have no `name_*`: the
    file's values were the attribution then (migration 4 copied them so).
    """
    officer = data["name_officer"] if "name_officer" in data else data.get("officer")
    device = data["name_device"] if "name_device" in data else data.get("device_number")
    return officer, device


@dataclass(frozen=True)
class Period:
    """One stretch of the resolved timeline of a device."""

    start: datetime
    end: datetime | None
    assignment: Assignment | None


def timeline(assignments: Iterable[Assignment]) -> list[Period]:
    """The resolved history: who had the device from when to when, gaps included."""
    items = list(assignments)
    cuts = sorted({a.valid_from for a in items} | {a.valid_to for a in items if a.valid_to})
    periods: list[Period] = []
    for i, start in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else None
        found = assignment_at(items, start)
        if periods and periods[-1].assignment == found:
            periods[-1] = Period(periods[-1].start, end, found)
        else:
            periods.append(Period(start, end, found))
    while periods and periods[-1].assignment is None and periods[-1].end is None:
        periods.pop()  # the open tail after the last period is not a period
    return periods
