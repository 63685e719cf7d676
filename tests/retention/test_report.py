"""The compliance report, pure: aggregation, overdue devices and renderings (R1, R7, R8)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from dockd.clock import isoformat_utc, parse_utc
from dockd.retention.continuity import GapExplanation, Interruption
from dockd.retention.overdue import (
    REASON_INCOMPLETE,
    REASON_NOT_DOCKED,
    DeviceFacts,
    LastSession,
    last_sessions,
    not_docked,
    overdue_devices,
)
from dockd.retention.report import (
    COUNTS,
    GROUP_KEYS,
    HUNDREDTH_HOUR,
    NONE_LABEL,
    OVERDUE_COLUMNS,
    REPORT_COLUMNS,
    SECOND,
    ComplianceReport,
    GroupCounts,
    apportion,
    compliance_report,
    gap_listing,
    group_of,
    is_unlabelled,
    overdue_to_csv,
    to_csv,
    to_json,
)
from dockd.retention.report_table import render_overdue, render_table

NOW = datetime(2026, 12, 10, 12, 0, 0, tzinfo=UTC)
BASE = datetime(2026, 11, 25, 1, 0, 0, tzinfo=UTC)


def row(
    id: int,
    *,
    unit: str | None = "Patrol 1",
    officer: str | None = "012345",
    serial: str = "CAM0001",
    start: datetime = BASE,
    minutes: float = 30,
    ingested: datetime = BASE + timedelta(hours=8),
    late: bool = False,
    flags: tuple[str, ...] = (),
    cause: str | None = "traffic stop",
    cases: int = 0,
    state: str = "live",
) -> dict[str, Any]:
    """A Catalog.compliance_rows row, as SQLite gives it (late 0/1, flags JSON text)."""
    return {
        "id": id,
        "device_serial": serial,
        "device_number": None,
        "officer": officer,
        "unit": unit,
        "session_id": 1,
        "sequence": id,
        "recorded_start": isoformat_utc(start),
        "recorded_end": isoformat_utc(start + timedelta(minutes=minutes)),
        "ingested_at": isoformat_utc(ingested),
        "late": int(late),
        "flags": json.dumps(list(flags)),
        "cause": cause,
        "cases": cases,
        "retention_state": state,
    }


def gap(before: int, after: int, kind: str = "t", serial: str = "CAM0001") -> Interruption:
    return Interruption(
        f"{kind}{before}-{after}",
        "time_gap" if kind == "t" else "sequence_hole",
        serial,
        1,
        before,
        after,
        BASE,
        BASE + timedelta(minutes=5),
        None if kind == "t" else (3, 4),
    )


ROWS = [
    row(1, minutes=30),
    row(2, minutes=45, late=True),
    row(3, unit="Traffic", officer="054321", serial="CAM0002", minutes=90, cause=None, cases=1),
    # Unassigned: no unit, the officer of the file name, no cause: unlabelled.
    row(4, unit=None, officer=None, serial="CAM0003", minutes=6, flags=("unassigned_device",),
        cause=None, late=True),
    row(5, unit=None, officer="054321", serial="CAM0003", minutes=1.5,
        flags=("unassigned_device", "late"), cause="  ", late=True),
]  # fmt: skip
GAPS = [gap(1, 2), gap(1, 2, "s"), gap(3, 4), gap(99, 5), gap(5, 100)]
EXPLAINED: dict[str, list[GapExplanation]] = {
    "t1-2": [GapExplanation(1, "t1-2", "CAM0001", "battery", "sgt", "x", 9)],
    "s1-2": [],  # an empty list is no explanation
}


def by_unit() -> ComplianceReport:
    return compliance_report(ROWS, GAPS, EXPLAINED, NOW, 7.0, "unit")


def counts(g: GroupCounts) -> dict[str, Any]:
    return {c: g.value(c) for c in COUNTS}


# -- aggregation ------------------------------------------------------------------------------


def test_counts_per_unit_and_total() -> None:
    report = by_unit()
    assert [g.group for g in report.groups] == ["Patrol 1", "Traffic", NONE_LABEL]
    patrol, traffic, none = report.groups
    assert counts(patrol) == {
        "recordings": 2, "hours": 1.25, "seconds": 4500, "on_time": 1, "late": 1,
        "interruptions_explained": 1, "interruptions_unexplained": 1,
        "unassigned": 0, "unlabelled": 0,
    }  # fmt: skip
    assert counts(traffic) == {
        "recordings": 1, "hours": 1.5, "seconds": 5400, "on_time": 1, "late": 0,
        "interruptions_explained": 0, "interruptions_unexplained": 0,
        "unassigned": 0, "unlabelled": 0,
    }  # fmt: skip
    # t3-4 belongs to recording 4's group (the one after the gap), not to Traffic;
    # g99-5 too (its `before` is outside the period); g5-100 is dropped (after outside).
    assert counts(none) == {
        "recordings": 2, "hours": 0.13, "seconds": 450, "on_time": 0, "late": 2,
        "interruptions_explained": 0, "interruptions_unexplained": 2,
        "unassigned": 2, "unlabelled": 2,
    }  # fmt: skip
    assert report.total.group == "TOTAL"
    assert counts(report.total) == {
        "recordings": 5, "hours": 2.88, "seconds": 10350, "on_time": 2, "late": 3,
        "interruptions_explained": 1, "interruptions_unexplained": 3,
        "unassigned": 2, "unlabelled": 2,
    }  # fmt: skip
    assert report.total.duration == timedelta(minutes=30 + 45 + 90 + 6 + 1.5)
    assert report.total.interruptions == 4


def _alone(duration: timedelta) -> GroupCounts:
    return compliance_report(
        [row(1, minutes=duration / timedelta(minutes=1))], [], {}, NOW, 7
    ).total


def test_hours_round_half_up_from_the_exact_sum() -> None:
    assert _alone(timedelta(minutes=7.5)).hours == Decimal("0.13")
    assert _alone(timedelta(minutes=172.5)).hours == Decimal("2.88")
    assert _alone(timedelta(seconds=17)).hours == Decimal("0.00")
    assert _alone(timedelta(seconds=18)).hours == Decimal("0.01")
    assert _alone(timedelta(seconds=1.5)).seconds == 2
    assert _alone(timedelta(seconds=1.499999)).seconds == 1
    # Microseconds are summed exactly: no float drift over many short clips.
    many = compliance_report([row(i, minutes=0.1) for i in range(1, 601)], [], {}, NOW, 7.0).total
    assert many.duration == timedelta(hours=1) and many.hours == 1 and many.seconds == 3600


def test_groups_are_rounded_to_add_up_to_the_total() -> None:
    # Two groups of 0.125 h: each alone would show 0.13, yet the total is 0.25 h.
    rows = [row(1, unit="A", minutes=7.5), row(2, unit="B", minutes=7.5)]
    report = compliance_report(rows, [], {}, NOW, 7.0)
    assert [g.hours for g in report.groups] == [Decimal("0.13"), Decimal("0.12")]
    assert report.total.hours == Decimal("0.25")
    # Three thirds of an hour: 0.33 each would lose 0.01; the first one takes it.
    rows = [row(i, unit=u, minutes=20) for i, u in enumerate("ABC", 1)]
    report = compliance_report(rows, [], {}, NOW, 7.0)
    assert [str(g.hours) for g in (*report.groups, report.total)] == [
        "0.34", "0.33", "0.33", "1.00",
    ]  # fmt: skip
    assert [g.seconds for g in report.groups] == [1200, 1200, 1200]
    # The largest remainder takes the unit, whatever the order.
    assert apportion([timedelta(seconds=s) for s in (10, 25, 30)], HUNDREDTH_HOUR) == (
        [0, 1, 1], 2,
    )  # fmt: skip
    assert apportion([], SECOND) == ([], 0)


def _units(d: timedelta, unit: timedelta) -> Decimal:
    return Decimal(d // timedelta(microseconds=1)) / Decimal(unit // timedelta(microseconds=1))


def _half_up(value: Decimal) -> int:
    return int(value.to_integral_value(ROUND_HALF_UP))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 10**12), max_size=30),
    st.sampled_from([HUNDREDTH_HOUR, SECOND, timedelta(microseconds=7)]),
)
def test_apportion_adds_up_and_stays_within_one_unit(micro: list[int], unit: timedelta) -> None:
    exact = [timedelta(microseconds=m) for m in micro]
    parts, total = apportion(exact, unit)
    assert sum(parts) == total
    assert total == _half_up(_units(sum(exact, timedelta(0)), unit))
    for d, shown in zip(exact, parts, strict=True):
        assert abs(shown - _units(d, unit)) < 1, "the floor or the ceiling"
    alone = [_half_up(_units(d, unit)) for d in exact]
    if sum(alone) == total:
        assert parts == alone, "rounding each alone already adds up: nothing moves"


def test_apportion_of_negative_durations_still_adds_up() -> None:
    # A recording whose end precedes its start (a camera clock set back mid-file).
    parts, total = apportion([timedelta(seconds=-1.5), timedelta(seconds=3.2)], SECOND)
    assert sum(parts) == total == 2


def test_group_by_officer_and_device() -> None:
    officers = compliance_report(ROWS, GAPS, EXPLAINED, NOW, 7.0, "officer")
    assert [(g.group, g.recordings) for g in officers.groups] == [
        ("012345", 2), ("054321", 2), (NONE_LABEL, 1),
    ]  # fmt: skip
    devices = compliance_report(ROWS, GAPS, EXPLAINED, NOW, 7.0, "device")
    assert [(g.group, g.recordings, g.interruptions) for g in devices.groups] == [
        ("CAM0001", 2, 2), ("CAM0002", 1, 0), ("CAM0003", 2, 2),
    ]  # fmt: skip
    assert counts(officers.total) == counts(devices.total) == counts(by_unit().total)


def test_group_of_missing_blank_and_bad_key() -> None:
    assert group_of({"unit": None}, "unit") == NONE_LABEL
    assert group_of({"unit": "  "}, "unit") == NONE_LABEL
    assert group_of({"officer": " 012345 "}, "officer") == "012345"
    assert group_of({"device_serial": "CAM1", "device_number": "07"}, "device") == "CAM1"
    with pytest.raises(ValueError, match="group by one of unit, officer, device"):
        group_of({"unit": "x"}, "squad")


def test_unlabelled_needs_no_cause_no_case_and_age() -> None:
    ingested = NOW - timedelta(days=7)
    plain = row(1, cause=None, ingested=ingested)
    assert not is_unlabelled(plain, NOW, 7.0), "exactly label_after_days: not yet"
    assert is_unlabelled(plain, NOW + timedelta(seconds=1), 7.0)
    assert is_unlabelled(plain, NOW, 6.5)
    assert not is_unlabelled(row(1, cause="theft", ingested=ingested), NOW, 1)
    assert is_unlabelled(row(1, cause=" ", ingested=ingested), NOW, 1), "a blank cause is none"
    assert not is_unlabelled(row(1, cause=None, cases=2, ingested=ingested), NOW, 1)
    deleted = row(1, cause=None, ingested=ingested, state="deleted")
    assert not is_unlabelled(deleted, NOW, 1), "a tombstone has nothing left to label"
    pending = row(1, cause=None, ingested=ingested, state="pending_deletion")
    assert is_unlabelled(pending, NOW, 1)


def test_deleted_recordings_still_count_otherwise() -> None:
    report = compliance_report(
        [row(1, late=True, state="deleted", cause=None, ingested=BASE)], [], {}, NOW, 7.0
    )
    assert counts(report.total) | {"hours": 0, "seconds": 0} == {
        "recordings": 1, "hours": 0, "seconds": 0, "on_time": 0, "late": 1,
        "interruptions_explained": 0, "interruptions_unexplained": 0,
        "unassigned": 0, "unlabelled": 0,
    }  # fmt: skip


def test_empty_report() -> None:
    report = compliance_report([], [gap(1, 2)], {}, NOW, 7.0, "officer")
    assert report.groups == ()
    assert counts(report.total) == dict.fromkeys(COUNTS, 0)
    assert to_csv(report).decode("utf-8") == (
        "\ufeffofficer,recordings,hours,seconds,on_time,late,interruptions_explained,"
        "interruptions_unexplained,unassigned,unlabelled,period_from,period_to,as_of,"
        "label_after_days\nTOTAL,0,0.00,0,0,0,0,0,0,0,,,2026-12-10T12:00:00Z,7\n"
    )
    assert overdue_to_csv(report) == ("\ufeff" + ",".join(OVERDUE_COLUMNS) + "\n").encode()


def test_flags_may_be_a_list() -> None:
    r = row(1) | {"flags": ["unassigned_device"]}
    assert compliance_report([r], [], {}, NOW, 7.0).total.unassigned == 1
    r = row(1) | {"flags": None}
    assert compliance_report([r], [], {}, NOW, 7.0).total.unassigned == 0


# -- properties ---------------------------------------------------------------------------------

_NAMES = st.one_of(st.none(), st.sampled_from(["A", "B", "一中队", "", " "]))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[Interruption], dict[str, Any]]:
    n = draw(st.integers(0, 25))
    rows = [
        row(
            i + 1,
            unit=draw(_NAMES),
            officer=draw(_NAMES),
            serial=draw(st.sampled_from(["CAM1", "CAM2", "CAM3"])),
            start=BASE + timedelta(seconds=draw(st.integers(0, 10**6))),
            minutes=draw(st.floats(0, 600, allow_nan=False).map(lambda m: round(m, 3))),
            ingested=NOW - timedelta(hours=draw(st.integers(0, 24 * 30))),
            late=draw(st.booleans()),
            flags=draw(st.sampled_from([(), ("unassigned_device",), ("late", "empty")])),
            cause=draw(st.sampled_from([None, "", "theft"])),
            cases=draw(st.integers(0, 2)),
            state=draw(st.sampled_from(["live", "pending_deletion", "deleted"])),
        )
        for i in range(n)
    ]
    pairs = draw(st.lists(st.tuples(st.integers(1, n + 3), st.integers(1, n + 3)), max_size=15))
    gaps = [gap(a, b, kind) for (a, b), kind in zip(pairs, "ts" * 8, strict=False)]
    explained = {
        g.id: [GapExplanation(1, g.id, g.device_serial, "x", None, "x", 1)]
        for g in gaps
        if draw(st.booleans())
    }
    return rows, gaps, explained


def _exact(g: GroupCounts, column: str) -> int | float | Decimal:
    return g.hours if column == "hours" else g.value(column)


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.sampled_from(GROUP_KEYS), st.floats(0, 40))
def test_totals_are_the_sum_of_the_groups(
    scenario: tuple[list[dict[str, Any]], list[Interruption], dict[str, Any]],
    by: str,
    label_after_days: float,
) -> None:
    rows, gaps, explained = scenario
    report = compliance_report(rows, gaps, explained, NOW, label_after_days, by)
    for column in COUNTS:
        # Every column, hours too (exactly, in Decimal): the groups add up to TOTAL.
        assert _exact(report.total, column) == sum(_exact(g, column) for g in report.groups)
    assert report.total.duration == sum((g.duration for g in report.groups), timedelta(0))
    assert report.total.recordings == len(rows)
    for g in (*report.groups, report.total):
        assert g.on_time + g.late == g.recordings
        assert g.unassigned <= g.recordings and g.unlabelled <= g.recordings
    assert len({g.group for g in report.groups}) == len(report.groups)
    ids = {r["id"] for r in rows}
    assert report.total.interruptions == sum(1 for g in gaps if g.after in ids)


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.floats(0, 40))
def test_grouping_by_any_key_conserves_counts(
    scenario: tuple[list[dict[str, Any]], list[Interruption], dict[str, Any]],
    label_after_days: float,
) -> None:
    rows, gaps, explained = scenario
    totals = [
        compliance_report(rows, gaps, explained, NOW, label_after_days, by).total
        for by in GROUP_KEYS
    ]
    assert totals[0] == totals[1] == totals[2]
    # A row's group holds it: splitting the rows by group and reporting each part
    # gives that group's counts.
    report = compliance_report(rows, gaps, explained, NOW, label_after_days, "officer")
    for g in report.groups:
        part = [r for r in rows if group_of(r, "officer") == g.group]
        alone = compliance_report(part, gaps, explained, NOW, label_after_days, "officer")
        # All but the shown durations, which are rounded with the other groups.
        (own,) = alone.groups
        assert replace(own, hours=g.hours, seconds=g.seconds) == g
        assert abs(own.hours - g.hours) <= Decimal("0.01") and abs(own.seconds - g.seconds) <= 1


# -- renderings ---------------------------------------------------------------------------------


def _parse(data: bytes) -> list[dict[str, str]]:
    """As an analyst's script reads it: the csv module, "utf-8-sig" (which drops the BOM)."""
    assert data.startswith(b"\xef\xbb\xbf"), "Excel needs the BOM to read UTF-8"
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_exact() -> None:
    report = compliance_report(
        ROWS, GAPS, EXPLAINED, NOW, 7.0, "unit", start=datetime(2026, 11, 1, tzinfo=UTC)
    )
    data = to_csv(report)
    assert data.decode("utf-8") == (
        "\ufeffunit,recordings,hours,seconds,on_time,late,interruptions_explained,"
        "interruptions_unexplained,unassigned,unlabelled,period_from,period_to,as_of,"
        "label_after_days\n"
        "Patrol 1,2,1.25,4500,1,1,1,1,0,0,2026-11-01T00:00:00Z,,2026-12-10T12:00:00Z,7\n"
        "Traffic,1,1.50,5400,1,0,0,0,0,0,2026-11-01T00:00:00Z,,2026-12-10T12:00:00Z,7\n"
        "(none),2,0.13,450,0,2,0,2,2,2,2026-11-01T00:00:00Z,,2026-12-10T12:00:00Z,7\n"
        "TOTAL,5,2.88,10350,2,3,1,3,2,2,2026-11-01T00:00:00Z,,2026-12-10T12:00:00Z,7\n"
    )
    parsed = _parse(data)
    assert [r["unit"] for r in parsed] == ["Patrol 1", "Traffic", "(none)", "TOTAL"]
    assert list(parsed[0]) == ["unit", *COUNTS, *REPORT_COLUMNS]


def test_csv_quotes_what_needs_quoting_and_keeps_chinese() -> None:
    report = compliance_report(
        [row(1, unit='Squad "A", east'), row(2, unit="一中队")], [], {}, NOW, 7
    )
    lines = to_csv(report).decode("utf-8-sig").splitlines()
    assert lines[1].startswith('"Squad ""A"", east",1,0.50,1800,1,0,')
    assert next(csv.reader([lines[1]]))[0] == 'Squad "A", east'
    assert lines[2].startswith("一中队,1,0.50,1800,")
    assert "一中队".encode() in to_csv(report), "UTF-8, not the local code page"


@st.composite
def durations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Recordings of random length to the microsecond, in a few groups."""
    rows = []
    for i in range(draw(st.integers(0, 40))):
        r = row(i + 1, unit=draw(st.sampled_from(["A", "B", "C", "一中队", None])))
        length = timedelta(microseconds=draw(st.integers(0, 8 * 3_600_000_000)))
        rows.append(r | {"recorded_end": isoformat_utc(BASE + length)})
    return rows


@settings(max_examples=200, deadline=None)
@given(durations())
def test_csv_total_row_is_the_sum_of_the_rows(rows: list[dict[str, Any]]) -> None:
    report = compliance_report(rows, [], {}, NOW, 7.0, "unit")
    *groups, total = _parse(to_csv(report))
    assert total["unit"] == "TOTAL" and len(groups) == len(report.groups)
    for column in COUNTS:
        # What a spreadsheet's SUM over the rows gives, in exact decimals ...
        assert sum(Decimal(g[column]) for g in groups) == Decimal(total[column]), column
        # ... and in floats as Excel or pandas add them: seconds are whole, so exact;
        # hours to 2 decimals show the same.
        summed = sum(float(g[column]) for g in groups)
        assert round(summed, 2) == float(total[column]), column
    # TOTAL is the exact sum, rounded half up once.
    exact = sum((parse_utc(r["recorded_end"]) - BASE for r in rows), timedelta(0))
    hours = Decimal(exact // timedelta(microseconds=1)) / Decimal(3_600_000_000)
    assert Decimal(total["hours"]) == hours.quantize(Decimal("0.01"), ROUND_HALF_UP)
    seconds = Decimal(exact // timedelta(microseconds=1)) / Decimal(1_000_000)
    assert int(total["seconds"]) == int(seconds.quantize(Decimal(1), ROUND_HALF_UP))
    for g in groups:
        assert (g["period_from"], g["period_to"], g["as_of"]) == ("", "", "2026-12-10T12:00:00Z")


def test_json_exact() -> None:
    report = compliance_report(
        ROWS[:2], GAPS, EXPLAINED, NOW, 7.0, "unit",
        start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC),
    )  # fmt: skip
    data = json.loads(to_json(report))
    assert data == {
        "by": "unit",
        "from": "2026-11-01T00:00:00Z",
        "to": "2026-12-01T00:00:00Z",
        "as_of": "2026-12-10T12:00:00Z",
        "label_after_days": 7.0,
        "groups": [
            {"group": "Patrol 1", "recordings": 2, "hours": 1.25, "seconds": 4500,
             "on_time": 1, "late": 1,
             "interruptions_explained": 1, "interruptions_unexplained": 1, "unassigned": 0,
             "unlabelled": 0},
        ],
        "total": {"group": "TOTAL", "recordings": 2, "hours": 1.25, "seconds": 4500,
                  "on_time": 1, "late": 1,
                  "interruptions_explained": 1, "interruptions_unexplained": 1, "unassigned": 0,
                  "unlabelled": 0},
        "overdue_devices": [],
    }  # fmt: skip
    assert json.loads(to_json(compliance_report([], [], {}, NOW, 7.0)))["from"] is None


def _text(renderable: Any) -> str:
    console = Console(width=250, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_table_shows_groups_and_total() -> None:
    text = _text(render_table(by_unit()))
    assert "compliance by unit, recorded from the beginning to now" in text
    lines = [line.split() for line in text.splitlines()]
    assert ["Patrol", "1", "2", "1.25", "1", "1", "1", "1", "0", "0"] in [
        [c for c in line if c != "│"] for line in lines
    ]
    assert ["TOTAL", "5", "2.88", "2", "3", "1", "3", "2", "2"] in [
        [c for c in line if c != "│"] for line in lines
    ]


# -- overdue devices ----------------------------------------------------------------------------


def session_row(
    id: int, serial: str, state: str, ended: datetime | None, summary: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": id,
        "device_serial": serial,
        "state": state,
        "started_at": isoformat_utc((ended or NOW) - timedelta(minutes=5)),
        "ended_at": isoformat_utc(ended) if ended else None,
        "summary": json.dumps(summary) if summary is not None else None,
    }


def test_last_sessions_takes_the_newest_per_device() -> None:
    rows = [
        session_row(1, "CAM1", "volume_gone", NOW - timedelta(days=3), {"failed": 2}),
        session_row(2, "CAM2", "done", NOW - timedelta(days=2), {"failed": 0}),
        session_row(3, "CAM1", "done", NOW - timedelta(days=1), {
            "failed": 1, "wipe_failed": 0,
            "failed_files": [{"source_path": "DCIM/a.mp4", "reason": "read error"}],
        }),
        session_row(4, "CAM3", "running", None, None),
    ]  # fmt: skip
    last = last_sessions(rows)
    assert set(last) == {"CAM1", "CAM2", "CAM3"}
    assert last["CAM1"] == LastSession(
        3, "CAM1", "done", NOW - timedelta(days=1, minutes=5), NOW - timedelta(days=1),
        1, 0, ("DCIM/a.mp4",),
    )  # fmt: skip
    assert last["CAM1"].incomplete
    assert not last["CAM2"].incomplete
    assert last["CAM3"].ended_at is None and not last["CAM3"].incomplete
    assert last_sessions(reversed(rows)) == last


def device(serial: str, **kw: Any) -> DeviceFacts:
    values: dict[str, Any] = {
        "assigned": True, "officer": "012345", "unit": "Patrol 1", "device_number": "07",
        "last_docked": NOW - timedelta(days=2), "assigned_from": NOW - timedelta(days=30),
    }  # fmt: skip
    return DeviceFacts(serial, **(values | kw))


def test_not_docked_counts_from_the_later_of_docking_and_hand_out() -> None:
    day = timedelta(hours=24)
    handed_out = NOW - timedelta(hours=1)
    assert not not_docked(NOW - timedelta(days=5), handed_out, NOW, day)  # just issued
    assert not_docked(NOW - timedelta(days=5), NOW - timedelta(days=3), NOW, day)
    assert not_docked(None, NOW - timedelta(hours=25), NOW, day)  # never docked
    assert not not_docked(None, NOW - day, NOW, day)  # exactly the limit is not past it
    assert not not_docked(NOW - timedelta(hours=2), NOW - timedelta(days=9), NOW, day)


def test_overdue_devices() -> None:
    long_ago = NOW - timedelta(hours=30)
    recent = NOW - timedelta(hours=20)
    sessions = last_sessions(
        [
            session_row(1, "A-NOT-DOCKED", "done", long_ago, {"failed": 0}),
            session_row(2, "B-GONE", "volume_gone", long_ago, {"failed": 3}),
            session_row(3, "C-GONE-RECENT", "volume_gone", recent, {"failed": 3}),
            session_row(4, "D-WIPE", "done", long_ago, {"failed": 0, "wipe_failed": 2}),
            session_row(5, "E-POOL", "stopped", long_ago, {}),
            session_row(6, "F-KEPT", "done", long_ago, {"failed": 0, "wiped": 0}),
            session_row(7, "G-INTERRUPTED", "interrupted", long_ago, None),
        ]
    )
    devices = [
        device("A-NOT-DOCKED", not_docked=True, last_docked=long_ago),
        # Handed out an hour ago (rule a: not overdue) but its last docking failed.
        device("B-GONE", assigned_from=NOW - timedelta(hours=1), last_docked=long_ago),
        device("C-GONE-RECENT", last_docked=recent),
        device("D-WIPE", last_docked=long_ago),
        device("E-POOL", assigned=False, officer=None, unit=None, not_docked=False),
        device("F-KEPT", last_docked=long_ago),
        device("G-INTERRUPTED", not_docked=True, last_docked=long_ago),
        device("H-NEVER", not_docked=True, last_docked=None),
    ]
    found = overdue_devices(devices, sessions, NOW)
    assert [(d.serial, d.reasons) for d in found] == [
        ("A-NOT-DOCKED", (REASON_NOT_DOCKED,)),
        ("B-GONE", (REASON_INCOMPLETE,)),
        ("D-WIPE", (REASON_INCOMPLETE,)),
        ("G-INTERRUPTED", (REASON_NOT_DOCKED, REASON_INCOMPLETE)),
        ("H-NEVER", (REASON_NOT_DOCKED,)),
    ]
    a, b, d, g, h = found
    assert a.hours_since == 30.0 and a.session is None
    assert a.why() == "not docked for 30.0 h"
    assert b.since == NOW - timedelta(hours=1) and b.session is not None
    assert b.why() == "docking 2 ended volume_gone, 3 file(s) not taken"
    assert d.why() == "docking 4 ended done, 2 camera copy(ies) not cleared"
    assert g.why() == "not docked for 30.0 h; docking 7 ended interrupted"
    assert h.since == NOW - timedelta(days=30) and h.last_docked is None
    assert h.why() == "never docked, assigned 720.0 h ago"
    assert b.as_json() == {
        "serial": "B-GONE",
        "device_number": "07",
        "officer": "012345",
        "unit": "Patrol 1",
        "last_docked": "2026-12-09T06:00:00Z",
        "reasons": ["incomplete_docking"],
        "since": "2026-12-10T11:00:00Z",
        "hours_since": 1.0,
        "session": {
            "id": 2, "state": "volume_gone", "started_at": "2026-12-09T05:55:00Z",
            "ended_at": "2026-12-09T06:00:00Z", "failed": 3, "wipe_failed": 0,
            "failed_files": [],
        },
    }  # fmt: skip
    # A custom window (rule b counts the 24 h offload window by default).
    assert [d.serial for d in overdue_devices(devices, sessions, NOW, timedelta(hours=48))] == [
        "A-NOT-DOCKED", "G-INTERRUPTED", "H-NEVER",
    ]  # fmt: skip
    report = compliance_report([], [], {}, NOW, 7.0, overdue=found)
    assert [d["serial"] for d in report.as_json()["overdue_devices"]] == [
        "A-NOT-DOCKED", "B-GONE", "D-WIPE", "G-INTERRUPTED", "H-NEVER",
    ]  # fmt: skip
    text = _text(render_overdue(report))
    assert "docking 2 ended volume_gone, 3 file(s) not taken" in text
    assert "never" in text


def test_overdue_csv() -> None:
    long_ago = NOW - timedelta(hours=30)
    sessions = last_sessions([session_row(2, "B-GONE", "volume_gone", long_ago, {"failed": 3})])
    found = overdue_devices(
        [
            device("A-NOT-DOCKED", not_docked=True, last_docked=long_ago, unit="一中队"),
            device("B-GONE", last_docked=long_ago, officer=None, device_number=None),
        ],
        sessions,
        NOW,
    )
    report = compliance_report([row(1)], [], {}, NOW, 7.0, overdue=found)
    data = overdue_to_csv(report)
    assert data.decode("utf-8") == (
        "\ufeffserial,device_number,officer,unit,last_docked,since,hours_since,not_docked,"
        "incomplete_docking,session,session_state,session_ended_at,failed,wipe_failed,why,"
        "as_of\n"
        "A-NOT-DOCKED,07,012345,一中队,2026-12-09T06:00:00Z,2026-12-09T06:00:00Z,30.0,true,"
        "false,,,,,,not docked for 30.0 h,2026-12-10T12:00:00Z\n"
        "B-GONE,,,Patrol 1,2026-12-09T06:00:00Z,2026-12-09T06:00:00Z,30.0,false,true,2,"
        'volume_gone,2026-12-09T06:00:00Z,3,0,"docking 2 ended volume_gone, 3 file(s) not '
        'taken",2026-12-10T12:00:00Z\n'
    )
    parsed = _parse(data)
    assert [(d["serial"], d["not_docked"], d["incomplete_docking"]) for d in parsed] == [
        ("A-NOT-DOCKED", "true", "false"), ("B-GONE", "false", "true"),
    ]  # fmt: skip
    assert list(parsed[0]) == list(OVERDUE_COLUMNS)
    # The counts CSV is unchanged by them: a table of its own.
    assert to_csv(report) == to_csv(replace(report, overdue=()))


# -- gap listing -----------------------------------------------------------------------------


def test_gap_listing() -> None:
    gaps = [gap(1, 2), gap(2, 3, "s")]
    listed = gap_listing(gaps, EXPLAINED)
    assert [(g["gap"], g["explained"]) for g in listed] == [("t1-2", True), ("s2-3", False)]
    assert listed[0]["explanations"] == [
        {"text": "battery", "by": "sgt", "at": "x", "log_entry": 9}
    ]
    assert listed[1]["missing_sequence"] == [3, 4] and listed[1]["explanations"] == []
    assert [g["gap"] for g in gap_listing(gaps, EXPLAINED, unexplained_only=True)] == ["s2-3"]
