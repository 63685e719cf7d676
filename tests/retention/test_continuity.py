"""Interruptions in a device's footage (dockd/retention/continuity.py), pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockd.errors import DockdError
from dockd.retention.continuity import Clip, Interruption, interruptions, parse_gap_id

T0 = datetime(2026, 11, 25, 1, 0, 0, tzinfo=UTC)


def clip(
    i: int,
    start_s: float,
    length_s: float = 60,
    *,
    seq: int | None = None,
    session: int | None = 1,
    serial: str = "CAM1",
) -> Clip:
    start = T0 + timedelta(seconds=start_s)
    return Clip(i, serial, session, seq, start, start + timedelta(seconds=length_s))


def ids(found: list[Interruption]) -> list[str]:
    return [g.id for g in found]


def test_time_gaps_above_the_threshold_within_a_session() -> None:
    clips = [
        clip(1, 0),  # ends at 60
        clip(2, 120),  # 60 s pause: not above the threshold
        clip(3, 240.5),  # 60.5 s pause: a gap
        clip(4, 400),  # 99.5 s pause: a gap
    ]
    found = interruptions(clips, threshold_s=60)
    assert ids(found) == ["t2-3", "t3-4"]
    gap = found[0]
    assert (gap.kind, gap.device_serial, gap.session_id) == ("time_gap", "CAM1", 1)
    assert (gap.before, gap.after, gap.missing) == (2, 3, None)
    assert gap.start == T0 + timedelta(seconds=180) and gap.end == T0 + timedelta(seconds=240.5)
    assert gap.seconds == 60.5
    assert gap.as_json() == {
        "gap": "t2-3",
        "kind": "time_gap",
        "device_serial": "CAM1",
        "session": 1,
        "before": 2,
        "after": 3,
        "from": "2026-11-25T01:03:00Z",
        "to": "2026-11-25T01:04:00.500000Z",
        "seconds": 60.5,
        "missing_sequence": None,
    }


def test_gap_max_drops_pauses_longer_than_it() -> None:
    clips = [clip(1, 0), clip(2, 200), clip(3, 560), clip(4, 1000)]  # pauses 140, 300, 380
    assert ids(interruptions(clips, 60)) == ["t1-2", "t2-3", "t3-4"]
    assert ids(interruptions(clips, 60, max_s=300)) == ["t1-2", "t2-3"]
    assert ids(interruptions(clips, 60, max_s=299.9)) == ["t1-2"]
    assert ids(interruptions(clips, 60, max_s=0)) == ["t1-2", "t2-3", "t3-4"]


def test_no_time_gap_across_sessions_or_without_a_session() -> None:
    clips = [
        clip(1, 0, session=1),
        clip(2, 3600, session=2),  # next docking: a long pause is normal
        clip(3, 7200, session=2),  # same session: a gap
        clip(4, 10_000, session=None),
        clip(5, 20_000, session=None),  # no session known: nothing to compare
    ]
    assert ids(interruptions(clips, 60)) == ["t2-3"]


def test_devices_are_separate() -> None:
    clips = [
        clip(1, 0, serial="A", seq=1),
        clip(2, 1000, serial="B", seq=5),
        clip(3, 2000, serial="A", seq=2),
        clip(4, 3000, serial="B", seq=6),
    ]
    found = interruptions(clips, 60)
    assert ids(found) == ["t1-3", "t2-4"]
    assert [g.device_serial for g in found] == ["A", "B"]
    assert ids(interruptions(clips, 60, max_s=10)) == []


def test_sequence_holes_name_the_missing_range() -> None:
    clips = [
        clip(1, 0, seq=7),
        clip(2, 60, seq=8),
        clip(3, 120, seq=11),  # 9 and 10 never arrived
        clip(4, 180, seq=13, session=2),  # 12 missing, across sessions too
    ]
    found = interruptions(clips, 60)
    assert ids(found) == ["s2-3", "s3-4"]
    first, second = found
    assert (first.kind, first.missing, first.session_id) == ("sequence_hole", (9, 10), 1)
    assert first.start == clips[1].end and first.end == clips[2].start
    assert first.as_json()["missing_sequence"] == [9, 10]
    assert (second.missing, second.session_id) == ((12, 12), 2)


def test_a_sequence_reset_is_no_hole() -> None:
    clips = [clip(1, 0, seq=9998), clip(2, 60, seq=9999), clip(3, 120, seq=1), clip(4, 180, seq=2)]
    assert interruptions(clips, 60) == []
    # Equal numbers (a camera that repeats one) are no hole either.
    assert interruptions([clip(1, 0, seq=4), clip(2, 60, seq=4)], 60) == []


def test_clips_without_a_number_are_skipped_for_holes() -> None:
    clips = [clip(1, 0, seq=1), clip(2, 60, seq=None), clip(3, 120, seq=2), clip(4, 180, seq=4)]
    found = interruptions(clips, 60)
    assert ids(found) == ["s3-4"]
    assert found[0].missing == (3, 3)


def test_holes_follow_recording_time_not_id_or_input_order() -> None:
    clips = [clip(5, 0, seq=1), clip(2, 60, seq=2), clip(9, 120, seq=4)]
    assert ids(interruptions(list(reversed(clips)), 60)) == ["s2-9"]


def test_a_gap_and_a_hole_between_the_same_two_recordings() -> None:
    found = interruptions([clip(1, 0, seq=1), clip(2, 500, seq=3)], 60)
    assert ids(found) == ["t1-2", "s1-2"]
    assert [g.kind for g in found] == ["time_gap", "sequence_hole"]


@st.composite
def fleets(draw: st.DrawFn) -> list[Clip]:
    clips = []
    moment = 0.0
    seq = 1
    n = draw(st.integers(0, 15))
    for i in range(n):
        moment += draw(st.floats(0, 600, allow_nan=False))
        seq = draw(st.sampled_from([seq + 1, seq + 1, seq + 3, 1]))
        clips.append(
            clip(
                draw(st.integers(1, 10_000)) * 100 + i,
                moment,
                draw(st.floats(1, 120, allow_nan=False)),
                seq=seq,
                session=draw(st.sampled_from([1, 1, 2])),
                serial=draw(st.sampled_from(["A", "B"])),
            )
        )
        moment += clips[-1].end.timestamp() - clips[-1].start.timestamp()
    return clips


@settings(max_examples=60)
@given(fleets(), st.randoms(use_true_random=False))
def test_ids_are_stable(clips: list[Clip], rng: random.Random) -> None:
    """A gap's id depends only on the two recordings around it, not on the input order
    or on other devices' footage."""
    found = interruptions(clips, 60)
    shuffled = list(clips)
    rng.shuffle(shuffled)
    assert interruptions(shuffled, 60) == found
    only_a = [c for c in clips if c.device_serial == "A"]
    assert interruptions(only_a, 60) == [g for g in found if g.device_serial == "A"]
    assert len(ids(found)) == len(set(ids(found)))
    for gap in found:
        assert gap.id == f"{gap.id[0]}{gap.before}-{gap.after}"
        assert parse_gap_id(gap.id) == (gap.before, gap.after)
        if gap.kind == "time_gap":
            assert gap.seconds > 60
            assert gap.session_id is not None


def test_parse_gap_id() -> None:
    assert parse_gap_id("t12-13") == (12, 13)
    assert parse_gap_id("  s1-200\n") == (1, 200)
    for bad in ["", "x1-2", "t1", "t-1-2", "t1-2-3", "T1-2", "t1_2", "s a-b", "t1-2 extra"]:
        with pytest.raises(DockdError, match="not a gap id"):
            parse_gap_id(bad)
