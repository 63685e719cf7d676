"""Who carried which camera when (R2): pure assignment arithmetic.

Guards the rules of dockd/devices/registry.py that attribution of evidence
rests on: the newest registered assignment covering a moment wins; a period
includes its start and excludes its end; an unassignment in force means
nobody; with no assignment the file name's officer/device stand; and the
answer never depends on the order in which rows are read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from dockd.devices.registry import (
    Assignment,
    Attribution,
    Period,
    assignment_at,
    attribute,
    timeline,
)

BASE = datetime(2026, 11, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def at(hours: float) -> datetime:
    return BASE + timedelta(hours=hours)


def make(
    id: int,
    officer: str | None,
    start: float,
    end: float | None = None,
    *,
    unit: str | None = "U1",
    device_number: str | None = None,
) -> Assignment:
    return Assignment(
        id=id,
        serial="CAM1",
        officer=officer,
        unit=unit if officer is not None else None,
        device_number=device_number,
        valid_from=at(start),
        valid_to=at(end) if end is not None else None,
        created_at=at(100 + id),
        log_seq=10 + id,
    )


# -- assignment_at: table of fixed cases -----------------------------------------------


def test_newest_covering_assignment_wins() -> None:
    base = make(1, "A", 0)
    cover = make(2, "B", 5, 10)
    rows = [base, cover]
    assert assignment_at(rows, at(4.5)) == base
    assert assignment_at(rows, at(5)) == cover, "valid_from is inclusive"
    assert assignment_at(rows, at(10) - US) == cover
    assert assignment_at(rows, at(10)) == base, "valid_to is exclusive"


def test_newest_means_registered_last_not_starting_last() -> None:
    """A later correction (higher id) covering an older, shorter period overrides it."""
    short = make(1, "A", 5, 10)
    correction = make(2, "B", 0)
    assert assignment_at([short, correction], at(7)) == correction
    assert assignment_at([correction, short], at(7)) == correction


def test_valid_to_is_exclusive_and_valid_from_inclusive() -> None:
    only = make(1, "A", 2, 5)
    assert assignment_at([only], at(2) - US) is None
    assert assignment_at([only], at(2)) == only
    assert assignment_at([only], at(5) - US) == only
    assert assignment_at([only], at(5)) is None


def test_unassignment_in_force_means_nobody() -> None:
    """An explicit return to the pool hides the older assignment it covers."""
    issued = make(1, "A", 0)
    returned = make(2, None, 5)
    rows = [issued, returned]
    assert assignment_at(rows, at(4)) == issued
    assert assignment_at(rows, at(5)) is None
    assert assignment_at(rows, at(50)) is None
    # A newer assignment again covers part of the pool period.
    again = make(3, "B", 8, 9)
    assert assignment_at([*rows, again], at(8.5)) == again
    assert assignment_at([*rows, again], at(9)) is None


def test_no_assignments_nothing_in_force() -> None:
    assert assignment_at([], at(0)) is None


# -- attribute -------------------------------------------------------------------------


def test_attribution_takes_officer_unit_and_number_from_the_assignment() -> None:
    row = make(7, "A", 0, unit="U9", device_number="DSJ0042")
    who = attribute([row], at(1), name_officer="NAMEOF", name_device="DSJ0001")
    assert who == Attribution("A", "U9", "DSJ0042", 7)
    assert who.assigned


def test_attribution_keeps_name_device_when_assignment_has_no_number() -> None:
    row = make(7, "A", 0, unit="U9", device_number=None)
    who = attribute([row], at(1), name_officer="NAMEOF", name_device="DSJ0001")
    assert who == Attribution("A", "U9", "DSJ0001", 7)


def test_attribution_falls_back_to_the_name_when_nothing_covers() -> None:
    row = make(1, "A", 5, 10)
    who = attribute([row], at(11), name_officer="012345", name_device="DSJ0001")
    assert who == Attribution("012345", None, "DSJ0001", None)
    assert not who.assigned


def test_attribution_under_an_unassignment_falls_back_to_the_name() -> None:
    rows = [make(1, "A", 0, device_number="DSJ0042"), make(2, None, 5)]
    who = attribute(rows, at(6), name_officer="012345", name_device="DSJ0001")
    assert who == Attribution("012345", None, "DSJ0001", None)
    assert not who.assigned


# -- timeline: table of fixed cases ----------------------------------------------------


def test_timeline_of_nothing_is_empty() -> None:
    assert timeline([]) == []


def test_timeline_shows_changes_in_order() -> None:
    a, b = make(1, "A", 0), make(2, "B", 5, 10)
    assert timeline([b, a]) == [
        Period(at(0), at(5), a),
        Period(at(5), at(10), b),
        Period(at(10), None, a),
    ]


def test_timeline_merges_adjacent_equal_periods() -> None:
    """A newer open assignment hides an older one inside it: one period, not three."""
    older = make(1, "A", 5, 10)
    newer = make(2, "B", 0)
    assert timeline([older, newer]) == [Period(at(0), None, newer)]


def test_timeline_shows_gaps_as_none_and_drops_the_open_tail() -> None:
    a, b = make(1, "A", 0, 5), make(2, "B", 8, 12)
    assert timeline([a, b]) == [
        Period(at(0), at(5), a),
        Period(at(5), at(8), None),
        Period(at(8), at(12), b),
    ]


def test_timeline_drops_an_open_unassignment_tail() -> None:
    a, back = make(1, "A", 0), make(2, None, 5)
    assert timeline([a, back]) == [Period(at(0), at(5), a)]


def test_timeline_unassignment_in_the_middle_is_a_gap() -> None:
    a, back = make(1, "A", 0), make(2, None, 5, 7)
    assert timeline([a, back]) == [
        Period(at(0), at(5), a),
        Period(at(5), at(7), None),
        Period(at(7), None, a),
    ]


# -- properties ------------------------------------------------------------------------

OFFICERS = st.sampled_from(["A", "B", "C", None])


@st.composite
def assignment_lists(draw: st.DrawFn, max_size: int = 8) -> list[Assignment]:
    """Assignments on an hour grid (many shared edges), ids unique, as registered."""
    n = draw(st.integers(min_value=0, max_value=max_size))
    rows = []
    for i in range(1, n + 1):
        start = draw(st.integers(min_value=0, max_value=20))
        length = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=10)))
        officer = draw(OFFICERS)
        number = draw(st.sampled_from([None, "DSJ0042"]))
        end = None if length is None else start + length
        rows.append(make(i, officer, start, end, unit=f"U{i}", device_number=number))
    return rows


# Half-hour probes over and beyond the grid: every cut, and every inside.
PROBES = [at(k / 2) for k in range(-2, 64)]


def reference_at(rows: list[Assignment], moment: datetime) -> Assignment | None:
    """The rule spelled out the slow way: newest first, first covering decides."""
    for row in sorted(rows, key=lambda a: a.id, reverse=True):
        start_ok = row.valid_from <= moment
        end_ok = row.valid_to is None or moment < row.valid_to
        if start_ok and end_ok:
            return row if row.officer is not None else None
    return None


def period_at(periods: list[Period], moment: datetime) -> Period | None:
    found = [p for p in periods if p.start <= moment and (p.end is None or moment < p.end)]
    assert len(found) <= 1, "periods overlap"
    return found[0] if found else None


@settings(max_examples=300)
@given(assignment_lists())
def test_assignment_at_is_newest_covering(rows: list[Assignment]) -> None:
    for moment in PROBES:
        assert assignment_at(rows, moment) == reference_at(rows, moment)


@settings(max_examples=300)
@given(st.data())
def test_result_does_not_depend_on_row_order(data: st.DataObject) -> None:
    rows = data.draw(assignment_lists())
    shuffled = data.draw(st.permutations(rows))
    assert timeline(shuffled) == timeline(rows)
    for moment in PROBES:
        assert assignment_at(shuffled, moment) == assignment_at(rows, moment)
        kw = {"name_officer": "012345", "name_device": "DSJ0001"}
        assert attribute(shuffled, moment, **kw) == attribute(rows, moment, **kw)


@settings(max_examples=300)
@given(assignment_lists())
def test_attribution_is_assignment_or_name(rows: list[Assignment]) -> None:
    for moment in PROBES:
        who = attribute(rows, moment, name_officer="012345", name_device="DSJ0001")
        found = reference_at(rows, moment)
        if found is None:
            assert who == Attribution("012345", None, "DSJ0001", None)
        else:
            number = found.device_number or "DSJ0001"
            assert who == Attribution(found.officer, found.unit, number, found.id)


@settings(max_examples=300)
@given(assignment_lists())
def test_timeline_agrees_with_assignment_at_everywhere(rows: list[Assignment]) -> None:
    periods = timeline(rows)
    for moment in PROBES:
        period = period_at(periods, moment)
        in_force = assignment_at(rows, moment)
        if period is None:
            assert in_force is None, f"{moment}: {in_force} is missing from the timeline"
        else:
            assert period.assignment == in_force


@settings(max_examples=300)
@given(assignment_lists())
def test_timeline_shape(rows: list[Assignment]) -> None:
    """Contiguous, ordered, merged, starting at the first valid_from, no gap at the end."""
    periods = timeline(rows)
    for before, after in pairwise(periods):
        assert before.end == after.start, "periods are contiguous"
        assert before.end is not None and before.start < before.end
        assert before.assignment != after.assignment, "equal neighbours are merged"
    if periods:
        assert periods[0].start == min(a.valid_from for a in rows)
        assert periods[-1].assignment is not None, "no trailing gap: the open tail is dropped"
        assert all(p.end is not None for p in periods[:-1])


@settings(max_examples=300)
@given(assignment_lists())
def test_timeline_covers_exactly_the_union_of_assignments(rows: list[Assignment]) -> None:
    """With officers only, the periods held by someone are exactly the assignments' union."""
    rows = [r for r in rows if r.officer is not None]
    periods = timeline(rows)
    for moment in PROBES:
        covered = any(r.covers(moment) for r in rows)
        period = period_at(periods, moment)
        held = period is not None and period.assignment is not None
        assert held == covered, moment
    if rows:
        ends = [r.valid_to for r in rows]
        last_end = None if None in ends else max(e for e in ends if e is not None)
        assert periods[0].start == min(r.valid_from for r in rows)
        assert periods[-1].end == last_end
