"""The compliance report for supervisors (R1, R7, R8), pure.

Values in, values out: the catalog's compliance rows, the interruptions
(`continuity.interruptions`), their written explanations, the device
registry and the last docking session of each device go in; frozen
dataclasses and their renderings (a rich table, JSON, CSV) come out.

- 002_f200e2d1272770f4.txt Art. 22: records are spot-checked
  (`dockd report spot-check`, in the Service: the draw is logged).
- 003_c057b48cfb56e612.txt Art. 19: the data are analysed for supervision
  and appraisal: this report, per unit, officer or device.
- 001_a4d0be362abbcb47.txt Art. 26: stored within 24 hours (`late`).
- 002_f200e2d1272770f4.txt Art. 13: interruptions are explained
  (`interruptions_explained` / `_unexplained`).

Per group (the recording's unit, officer or device serial, as attributed
now; a missing value is the group "(none)") the report counts, over the
recordings whose recording *start* lies in the period:

- `recordings`, and `hours` / `seconds`: the sum of recorded_end -
  recorded_start, summed exactly (microseconds) and shown in hundredths of an
  hour and in whole seconds. TOTAL shows its exact sum rounded half up; the
  groups are rounded so that they add up to TOTAL exactly (`apportion`), so a
  spreadsheet's SUM over the rows is the TOTAL row, and each group is within
  one unit (0.01 h, 1 s) of its exact value;
- `on_time` / `late`: the `late` fact fixed at ingest (ingested more than
  24 h after the recording ended), so on_time + late == recordings;
- `interruptions_explained` / `interruptions_unexplained`: each interruption
  that counts (`Interruption.counts`: a sequence hole, a split recording
  resumed late, a pause within a case; not an ordinary pause between two
  incidents, see continuity.py) counts once, for the group of its `after`
  recording, and only when that recording is one of the period's; explained
  means at least one written explanation (`dockd gap explain`) exists;
- `unassigned`: recordings flagged `unassigned_device` (no assignment
  covered their recording time);
- `unlabelled`: recordings with neither a cause nor a linked case that were
  ingested more than `retention.label_after_days` before now. Deleted
  recordings (tombstones) are never unlabelled: there is nothing left to label.

Deleted recordings count in every other column: they were made, and their
facts (times, lateness, attribution) stay in the catalog.

Overdue devices: dockd.retention.overdue (the one place of that rule).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from dockd.clock import isoformat_utc, parse_utc
from dockd.model import FLAG_UNASSIGNED
from dockd.retention.continuity import GapExplanation, Interruption
from dockd.retention.overdue import REASON_INCOMPLETE, REASON_NOT_DOCKED, OverdueDevice

GROUP_KEYS = ("unit", "officer", "device")
NONE_LABEL = "(none)"
TOTAL_LABEL = "TOTAL"

# The counted columns, in the order the JSON and the CSV show them; the table (for
# people) leaves out `seconds`, which is there for arithmetic that must be exact.
COUNTS = (
    "recordings",
    "hours",
    "seconds",
    "on_time",
    "late",
    "interruptions_explained",
    "interruptions_unexplained",
    "unassigned",
    "unlabelled",
)

TABLE_COUNTS = tuple(c for c in COUNTS if c != "seconds")

# The units durations are shown in: a hundredth of an hour (36 s) and a second.
HUNDREDTH_HOUR = timedelta(seconds=36)
SECOND = timedelta(seconds=1)

# Excel reads a CSV without a byte-order mark in the local code page (一中队 comes
# out garbled); with one it reads UTF-8. Python's "utf-8-sig" and pandas skip it.
CSV_BOM = "\ufeff"


@dataclass(frozen=True)
class GroupCounts:
    """The counts of one group (or of all: group TOTAL)."""

    group: str
    recordings: int = 0
    duration: timedelta = timedelta(0)
    on_time: int = 0
    late: int = 0
    interruptions_explained: int = 0
    interruptions_unexplained: int = 0
    unassigned: int = 0
    unlabelled: int = 0
    # `duration` as shown: hours to 2 decimals and whole seconds, set by
    # `compliance_report`, which rounds the groups together (`apportion`) so that
    # they add up to TOTAL's. Decimal, so that 0.13 is 0.13 and never passes a float.
    hours: Decimal = Decimal("0.00")
    seconds: int = 0

    @property
    def interruptions(self) -> int:
        return self.interruptions_explained + self.interruptions_unexplained

    def value(self, column: str) -> int | float:
        """The column's value as JSON gives it (hours as a float)."""
        if column == "hours":
            return float(self.hours)
        result: int = getattr(self, column)
        return result

    def as_json(self) -> dict[str, Any]:
        return {"group": self.group, **{c: self.value(c) for c in COUNTS}}


@dataclass(frozen=True)
class ComplianceReport:
    by: str
    start: datetime | None
    end: datetime | None
    as_of: datetime
    label_after_days: float
    groups: tuple[GroupCounts, ...]
    total: GroupCounts
    overdue: tuple[OverdueDevice, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "from": isoformat_utc(self.start) if self.start else None,
            "to": isoformat_utc(self.end) if self.end else None,
            "as_of": isoformat_utc(self.as_of),
            "label_after_days": self.label_after_days,
            "groups": [g.as_json() for g in self.groups],
            "total": self.total.as_json(),
            "overdue_devices": [d.as_json() for d in self.overdue],
        }


# -- aggregation ------------------------------------------------------------------------


def group_of(row: Mapping[str, Any], by: str) -> str:
    """The group a compliance row belongs to; "(none)" when the value is missing."""
    if by not in GROUP_KEYS:
        raise ValueError(f"group by one of {', '.join(GROUP_KEYS)}, not {by!r}")
    value = row.get("device_serial" if by == "device" else by)
    text = str(value).strip() if value is not None else ""
    return text or NONE_LABEL


def _flags(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, str):
        value = json.loads(value)
    return {str(v) for v in value}


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else parse_utc(value)


def is_unlabelled(row: Mapping[str, Any], now: datetime, label_after_days: float) -> bool:
    """No cause, no case, not deleted, and ingested more than label_after_days ago."""
    if row.get("retention_state") == "deleted":
        return False
    if (row.get("cause") or "").strip() or int(row.get("cases") or 0) > 0:
        return False
    return now - _moment(row["ingested_at"]) > timedelta(days=label_after_days)


def _sort_key(group: str) -> tuple[bool, str]:
    return (group == NONE_LABEL, group)


def compliance_report(
    rows: Iterable[Mapping[str, Any]],
    gaps: Iterable[Interruption],
    explanations: Mapping[str, Sequence[GapExplanation]],
    now: datetime,
    label_after_days: float,
    by: str = "unit",
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    overdue: Iterable[OverdueDevice] = (),
) -> ComplianceReport:
    """Count the compliance facts of `rows` (Catalog.compliance_rows) per group."""
    counts: dict[str, Counter[str]] = {}
    durations: dict[str, timedelta] = {}
    group_by_id: dict[int, str] = {}
    for row in rows:
        group = group_of(row, by)
        group_by_id[int(row["id"])] = group
        c = counts.setdefault(group, Counter())
        c["recordings"] += 1
        late = bool(row.get("late"))
        c["late" if late else "on_time"] += 1
        if FLAG_UNASSIGNED in _flags(row.get("flags")):
            c["unassigned"] += 1
        if is_unlabelled(row, now, label_after_days):
            c["unlabelled"] += 1
        length = _moment(row["recorded_end"]) - _moment(row["recorded_start"])
        durations[group] = durations.get(group, timedelta(0)) + length
    for gap in gaps:
        if not gap.counts:
            continue  # an ordinary pause between incidents (003 Art. 12, 002 Art. 13)
        owner = group_by_id.get(gap.after)
        if owner is None:
            continue  # its `after` recording is outside the period
        explained = bool(explanations.get(gap.id))
        counts[owner]["interruptions_explained" if explained else "interruptions_unexplained"] += 1
    ordered = sorted(counts, key=_sort_key)
    exact = [durations.get(group, timedelta(0)) for group in ordered]
    hours, total_hours = apportion(exact, HUNDREDTH_HOUR)
    seconds, total_seconds = apportion(exact, SECOND)
    groups = tuple(
        _counts(group, counts[group], exact[i], hours[i], seconds[i])
        for i, group in enumerate(ordered)
    )
    total_counter: Counter[str] = Counter()
    for c in counts.values():
        total_counter.update(c)
    total = _counts(
        TOTAL_LABEL, total_counter, sum(exact, timedelta(0)), total_hours, total_seconds
    )
    return ComplianceReport(by, start, end, now, label_after_days, groups, total, tuple(overdue))


def _counts(
    group: str, c: Counter[str], duration: timedelta, hundredths: int, seconds: int
) -> GroupCounts:
    names = {f.name for f in fields(GroupCounts)} - {"group", "duration", "hours", "seconds"}
    return GroupCounts(
        group=group,
        duration=duration,
        hours=Decimal(hundredths).scaleb(-2),
        seconds=seconds,
        **{n: c[n] for n in names},
    )


def apportion(exact: Sequence[timedelta], unit: timedelta) -> tuple[list[int], int]:
    """Round the parts of a sum, and the sum, to whole `unit`s, consistently.

    The sum is its exact value rounded half up. Rounding each part on its own
    would not add up to that (two groups of 0.125 h show 0.13 each, their total
    0.25), so the parts are rounded together (largest remainder): each becomes
    the floor or the ceiling of its exact value, the ceilings going to the parts
    with the largest remainders (on a tie, the earlier part), as many as the
    rounded sum needs. Where rounding each part half up already adds up, this
    gives exactly that. Returns (the parts, the sum), in units.
    """
    size = unit // timedelta(microseconds=1)
    micro = [d // timedelta(microseconds=1) for d in exact]
    total = (2 * sum(micro) + size) // (2 * size)  # half up, in exact integers
    parts = [m // size for m in micro]
    # sum(micro) / size == sum(parts) + (the remainders) / size, so `short` is the
    # remainders' sum rounded half up: never more than the parts that have one.
    short = total - sum(parts)
    for i in sorted(range(len(micro)), key=lambda i: -(micro[i] % size))[:short]:
        parts[i] += 1
    return parts, total


# -- interruptions with their explanations -------------------------------------------------


def gap_listing(
    gaps: Iterable[Interruption],
    explanations: Mapping[str, Sequence[GapExplanation]],
    *,
    unexplained_only: bool = False,
    include_pauses: bool = False,
) -> list[dict[str, Any]]:
    """Each interruption (Interruption.as_json) with its written explanations, oldest first.

    Only those that count, unless `include_pauses` (`gap list --all`): then the
    ordinary pauses too, which need no explanation but may have one.
    """
    listed: list[dict[str, Any]] = []
    for gap in gaps:
        if not (gap.counts or include_pauses):
            continue
        notes = [e.as_json() for e in explanations.get(gap.id, ())]
        if unexplained_only and notes:
            continue
        listed.append({**gap.as_json(), "explained": bool(notes), "explanations": notes})
    return listed


# -- renderings ----------------------------------------------------------------------------


def cell(g: GroupCounts, column: str) -> str:
    # hours from the Decimal: exactly the 2 decimals the rounding chose.
    return f"{g.hours:.2f}" if column == "hours" else str(g.value(column))


def _utc_cell(moment: datetime | None) -> str:
    return isoformat_utc(moment) if moment else ""


def _csv(rows: Iterable[Sequence[object]]) -> bytes:
    """UTF-8 with a byte-order mark (as the disc's catalog.csv), `\\n` line ends."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return (CSV_BOM + buffer.getvalue()).encode("utf-8")


# After the counts, on every row: what the counts mean. Columns rather than a header
# block, so that the file stays one table (Excel's filter, pandas.read_csv, csv
# module) and the CSVs of several months can be stacked and still tell apart.
REPORT_COLUMNS = ("period_from", "period_to", "as_of", "label_after_days")


def to_csv(report: ComplianceReport) -> bytes:
    """The counts: a header row, one row per group, the TOTAL row.

    Each row ends with the period (recording start in [period_from, period_to);
    empty: unbounded), the moment `unlabelled` was judged at (as_of) and
    label_after_days. The overdue devices are a table of their own
    (`overdue_to_csv`).
    """
    context = [
        _utc_cell(report.start),
        _utc_cell(report.end),
        isoformat_utc(report.as_of),
        f"{report.label_after_days:g}",
    ]
    return _csv(
        [
            [report.by, *COUNTS, *REPORT_COLUMNS],
            *([g.group, *(cell(g, c) for c in COUNTS), *context]
              for g in (*report.groups, report.total)),
        ]
    )  # fmt: skip


OVERDUE_COLUMNS = (
    "serial",
    "device_number",
    "officer",
    "unit",
    "last_docked",
    "since",
    "hours_since",
    "not_docked",
    "incomplete_docking",
    "session",
    "session_state",
    "session_ended_at",
    "failed",
    "wipe_failed",
    "why",
    "as_of",
)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def overdue_to_csv(report: ComplianceReport) -> bytes:
    """The devices overdue for docking at as_of: a header row, one row per device.

    The reasons are two true/false columns (filterable); the session columns
    describe the incomplete last docking and are empty for a device overdue only
    for not docking. A header row alone when none is overdue.
    """
    rows: list[list[object]] = [list(OVERDUE_COLUMNS)]
    for d in report.overdue:
        s = d.session
        rows.append(
            [
                d.serial,
                d.device_number or "",
                d.officer or "",
                d.unit or "",
                _utc_cell(d.last_docked),
                _utc_cell(d.since),
                "" if d.hours_since is None else f"{d.hours_since:.1f}",
                _flag(REASON_NOT_DOCKED in d.reasons),
                _flag(REASON_INCOMPLETE in d.reasons),
                s.id if s else "",
                s.state if s else "",
                _utc_cell(s.ended_at) if s else "",
                s.failed if s else "",
                s.wipe_failed if s else "",
                d.why(),
                isoformat_utc(report.as_of),
            ]
        )
    return _csv(rows)


def to_json(report: ComplianceReport) -> str:
    return json.dumps(report.as_json(), ensure_ascii=False, sort_keys=True)
