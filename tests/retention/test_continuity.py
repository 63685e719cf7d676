"""Interruptions in a device's footage (dockd/retention/continuity.py), pure.

The rule (003_c057b48cfb56e612.txt Art. 12, 002_f200e2d1272770f4.txt Art. 13):
a sequence hole always counts; a time gap counts when it splits one recording
(`split_recording`) or lies between two clips of one case within max_s
(`case_pause`); any other pause within a docking is listed as `pause` only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dockd.errors import DockdError
from dockd.retention.continuity import (
    JOIN_S,
    LENGTH_TOLERANCE_S,
    MIN_JOINS,
    MIN_SEGMENT_S,
    Clip,
    Interruption,
    counted,
    interruptions,
    is_next_file,
    parse_gap_id,
    segment_lengths,
)

T0 = datetime(2026, 11, 25, 1, 0, 0, tzinfo=UTC)
SEGMENT = 600.0  # the camera splits recordings every 10 minutes


def clip(
    i: int,
    start_s: float,
    length_s: float = 60,
    *,
    seq: int | None = None,
    session: int | None = 1,
    serial: str = "CAM1",
    cases: tuple[str, ...] = (),
) -> Clip:
    start = T0 + timedelta(seconds=start_s)
    end = start + timedelta(seconds=length_s)
    return Clip(i, serial, session, seq, start, end, frozenset(cases))


def ids(found: list[Interruption]) -> list[str]:
    return [g.id for g in found]


def reasons(found: list[Interruption]) -> dict[str, str | None]:
    return {g.id: g.reason for g in found}


def shift(
    lengths: Sequence[float], pauses: Sequence[float], *, first_seq: int = 1, serial: str = "CAM1"
) -> list[Clip]:
    """Clips 1..n of one docking, numbered on, each `pauses[i - 1]` after the last."""
    clips, moment = [], 0.0
    for i, length in enumerate(lengths):
        if i:
            moment += pauses[i - 1]
        clips.append(clip(i + 1, moment, length, seq=first_seq + i, serial=serial))
        moment += length
    return clips


# -- an ordinary shift ----------------------------------------------------------------------


def test_an_ordinary_shift_has_no_interruption() -> None:
    """13 recordings of a day shift, one per incident, 2 to 40 minutes apart: the
    pauses between incidents are normal and need no explanation."""
    lengths = [95, 240, 61, 410, 180, 33, 520, 75, 300, 128, 47, 260, 90]
    pauses = [300, 75, 1800, 62, 900, 2400, 130, 600, 95, 1200, 180, 4000]
    clips = shift(lengths, pauses)
    found = interruptions(clips, 60)
    assert counted(found) == []
    # Every pause over the threshold is still listed, as a pause (gap list --all).
    assert ids(found) == [f"t{i}-{i + 1}" for i in range(1, 13)]
    assert {g.reason for g in found} == {"pause"} and not any(g.counts for g in found)


# -- split recordings --------------------------------------------------------------------------


def test_a_split_recording_with_a_90_s_hole_counts() -> None:
    # A 40-minute recording split every 10 min: 1 -> 2 back to back (the camera shows
    # its segment length), then 90 s of it missing after 2, then 3 and 4 back to back.
    clips = shift([SEGMENT, SEGMENT, SEGMENT, 310], [0, 90, 0.4])
    found = interruptions(clips, 60)
    assert ids(found) == ["t2-3"]
    (gap,) = found
    assert (gap.kind, gap.reason, gap.counts) == ("time_gap", "split_recording", True)
    assert gap.segment_s == SEGMENT and gap.cases == ()
    assert (gap.before, gap.after, gap.session_id, gap.seconds) == (2, 3, 1, 90)
    assert gap.start == clips[1].end and gap.end == clips[2].start


def test_the_segment_length_is_learnt_from_the_whole_device() -> None:
    # The recording cut off after its first segment; only a later recording (5, 6, 7)
    # shows that this camera splits at about 600 s.
    clips = [
        clip(1, 0, SEGMENT, seq=1),
        clip(2, 700, 200, seq=2),  # 100 s after a full segment
        clip(5, 5000, SEGMENT - 1.5, seq=3),  # cut at a keyframe, a little early
        clip(6, 5000 + SEGMENT - 1.5 + 1, SEGMENT + 0.5, seq=4),  # its name 1 s late
        clip(7, 5000 + 2 * SEGMENT, 50, seq=5),
    ]
    assert segment_lengths(clips) == (SEGMENT - 1.5, SEGMENT + 0.5)
    (gap,) = counted(interruptions(clips, 60))
    assert (gap.id, gap.reason, gap.segment_s) == ("t1-2", "split_recording", SEGMENT + 0.5)
    # One split seen is not enough (see the next test); none at all: a pause.
    assert reasons(interruptions(clips[:4], 60)) == {"t1-2": "pause", "t2-5": "pause"}
    assert reasons(interruptions(clips[:2], 60)) == {"t1-2": "pause"}


def test_a_length_seen_once_teaches_nothing() -> None:
    # The officer stopped at 245 s and at once restarted: a next file back to back,
    # at a length no camera setting gives. Another 245 s clip later is no segment.
    clips = [
        clip(1, 0, 245, seq=1), clip(2, 246, 100, seq=2),
        clip(3, 2000, 245, seq=3), clip(4, 2400, 60, seq=4),
    ]  # fmt: skip
    assert segment_lengths(clips) == ()
    assert reasons(interruptions(clips, 60)) == {"t2-3": "pause", "t3-4": "pause"}


# A camera that has shown its segment length: one earlier docking (session 0) with a
# 21-minute recording, split into 600 + 600 + 60 s, numbered 101-103.
TAUGHT = [
    clip(101, -100_000, SEGMENT, seq=101, session=0),
    clip(102, -100_000 + SEGMENT, SEGMENT, seq=102, session=0),
    clip(103, -100_000 + 2 * SEGMENT, 60, seq=103, session=0),
]


def taught(*clips: Clip) -> list[Clip]:
    return [*TAUGHT, *clips]


J = JOIN_S
SPLIT_TABLE = [
    # (why, clips, expected reasons)
    (
        "a pause after a shorter clip: the officer stopped",
        taught(clip(1, 0, SEGMENT, seq=1), clip(2, SEGMENT, 300, seq=2), clip(3, 1000, 60, seq=3)),
        {"t2-3": "pause"},
    ),
    (
        "within the length tolerance: a segment",
        taught(clip(3, 0, SEGMENT + LENGTH_TOLERANCE_S, seq=3), clip(4, 800, 60, seq=4)),
        {"t3-4": "split_recording"},
    ),
    (
        "just outside the tolerance: no segment",
        taught(clip(3, 0, SEGMENT + LENGTH_TOLERANCE_S + 0.01, seq=3), clip(4, 800, 60, seq=4)),
        {"t3-4": "pause"},
    ),
    (
        "a next file within JOIN_S of the end continues the recording",
        [
            clip(1, 0, 100, seq=1), clip(2, 100 + J, 100, seq=2), clip(3, 200 + 2 * J, 50, seq=3),
            clip(4, 1000, 100, seq=4), clip(5, 1300, 60, seq=5),
        ],
        {"t3-4": "pause", "t4-5": "split_recording"},
    ),
    (
        "a next file later than JOIN_S after the end is a new recording",
        [
            clip(1, 0, 100, seq=1), clip(2, 100.01 + J, 100, seq=2),
            clip(3, 200.02 + 2 * J, 50, seq=3), clip(4, 1000, 100, seq=4),
            clip(5, 1300, 60, seq=5),
        ],
        {"t3-4": "pause", "t4-5": "pause"},
    ),
    (
        "a next file that starts a little early (names carry whole seconds) still joins",
        [
            clip(1, 0, 100, seq=1), clip(2, 99.2, 100, seq=2), clip(3, 198.4, 30, seq=3),
            clip(4, 500, 100, seq=4), clip(5, 700, 30, seq=5),
        ],
        {"t3-4": "pause", "t4-5": "split_recording"},
    ),
    (
        "back-to-back clips shorter than MIN_SEGMENT_S teach nothing",
        [
            clip(1, 0, MIN_SEGMENT_S - 1, seq=1),
            clip(2, MIN_SEGMENT_S - 1, MIN_SEGMENT_S - 1, seq=2),
            clip(3, 2 * MIN_SEGMENT_S - 2, 10, seq=3),
            clip(4, 500, MIN_SEGMENT_S - 1, seq=4), clip(5, 700, 10, seq=5),
        ],
        {"t3-4": "pause", "t4-5": "pause"},
    ),
    (
        "only the next file continues a recording: not across a hole, nor a count reset",
        taught(
            clip(1, 0, SEGMENT, seq=1), clip(2, SEGMENT + 100, 60, seq=3),  # 2 missing
            clip(3, 2000, SEGMENT, seq=4), clip(4, 2000 + SEGMENT + 100, 60, seq=1),  # reset
        ),
        {"t1-2": "pause", "t2-3": "pause", "t3-4": "pause", "s1-2": "sequence_hole"},
    ),
    (
        "a hole after a full segment counts as the hole, not twice",
        taught(clip(1, 0, SEGMENT, seq=1), clip(2, SEGMENT, SEGMENT, seq=2),
               clip(3, 1500, 60, seq=4)),
        {"t2-3": "pause", "s2-3": "sequence_hole"},
    ),
    (
        "cameras without numbers: unnumbered files continue each other",
        taught(
            clip(1, 0, SEGMENT), clip(2, SEGMENT, SEGMENT),
            clip(3, 2 * SEGMENT + 200, 30), clip(4, 3000, 30, seq=7),
        ),
        {"t2-3": "split_recording", "t3-4": "pause"},
    ),
    (
        "a split recording resumed in the next docking still counts",
        taught(clip(1, 0, SEGMENT, seq=1), clip(2, 40_000, 60, seq=2, session=2)),
        {"t1-2": "split_recording"},
    ),
    (
        "an unreadable clip (no duration) teaches nothing and ran no segment",
        taught(clip(1, 0, 0, seq=1), clip(2, 0, 0, seq=2), clip(3, 0, 0, seq=3),
               clip(4, 300, 0, seq=4)),
        {"t3-4": "pause"},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("clips", "expected"), [(c, e) for _, c, e in SPLIT_TABLE], ids=[w for w, _, _ in SPLIT_TABLE]
)
def test_split_recordings(clips: list[Clip], expected: dict[str, str]) -> None:
    assert reasons(interruptions(clips, 60)) == expected


def test_only_pauses_over_the_threshold_are_gaps() -> None:
    clips = taught(
        clip(1, 0, SEGMENT, seq=1), clip(2, SEGMENT, SEGMENT, seq=2),
        clip(3, 2 * SEGMENT + 60, SEGMENT, seq=3),  # 60 s after a full segment: not over 60
        clip(4, 3 * SEGMENT + 120.5, 60, seq=4),  # 60.5 s: over
    )  # fmt: skip
    assert reasons(interruptions(clips, 60)) == {"t3-4": "split_recording"}
    assert reasons(interruptions(clips, 0)) == {
        "t2-3": "split_recording",
        "t3-4": "split_recording",
    }


# -- case pauses --------------------------------------------------------------------------------


CASE_TABLE = [
    # (why, pause in s, cases of a, cases of b, max_s, expected reason or None)
    ("one case, 10 min apart", 600, ("C1",), ("C1",), 900, "case_pause"),
    ("one case, 20 min apart", 1200, ("C1",), ("C1",), 900, "pause"),
    ("one case, exactly 15 min", 900, ("C1",), ("C1",), 900, "case_pause"),
    ("one case, no bound", 86_000, ("C1",), ("C1",), 0, "case_pause"),
    ("one case, 60 s: no gap", 60, ("C1",), ("C1",), 900, None),
    ("two cases", 600, ("C1",), ("C2",), 900, "pause"),
    ("one of them linked", 600, ("C1",), (), 900, "pause"),
    ("a shared one among others", 600, ("C1", "C2"), ("C3", "C2"), 900, "case_pause"),
]


@pytest.mark.parametrize(
    ("pause", "a_cases", "b_cases", "max_s", "expected"),
    [row[1:] for row in CASE_TABLE],
    ids=[row[0] for row in CASE_TABLE],
)
def test_case_pauses(
    pause: float, a_cases: tuple[str, ...], b_cases: tuple[str, ...], max_s: float, expected: str
) -> None:
    clips = [clip(1, 0, 120, seq=1, cases=a_cases), clip(2, 120 + pause, 60, seq=2, cases=b_cases)]
    found = interruptions(clips, 60, max_s)
    assert reasons(found) == ({"t1-2": expected} if expected else {})
    if expected == "case_pause":
        assert found[0].cases == tuple(sorted(set(a_cases) & set(b_cases))) and found[0].counts


def test_case_clips_10_min_apart_count_and_20_min_apart_do_not_by_default() -> None:
    clips = [
        clip(1, 0, 120, seq=1, cases=("2026-001",)),
        clip(2, 720, 60, seq=2, cases=("2026-001",)),  # 10 min after 1
        clip(3, 1980, 60, seq=3, cases=("2026-001",)),  # 20 min after 2
    ]
    found = interruptions(clips, 60)  # the default max_s: 900 s
    assert reasons(found) == {"t1-2": "case_pause", "t2-3": "pause"}
    assert ids(counted(found)) == ["t1-2"]


def test_a_case_pause_counts_across_dockings_and_other_pauses_are_not_listed() -> None:
    clips = [
        clip(1, 0, 60, seq=1, session=1, cases=("C1",)),
        clip(2, 600, 60, seq=2, session=2, cases=("C1",)),
        clip(3, 3600, 60, seq=3, session=3),
        clip(4, 7200, 60, seq=4, session=None),
        clip(5, 9000, 60, seq=5, session=None),
    ]
    assert reasons(interruptions(clips, 60)) == {"t1-2": "case_pause"}
    assert interruptions(clips, 60)[0].session_id == 2  # the session of the one after


def test_a_split_recording_beats_a_case_pause() -> None:
    clips = taught(
        clip(1, 0, SEGMENT, seq=1, cases=("C1",)),
        clip(2, SEGMENT, SEGMENT, seq=2, cases=("C1",)),
        clip(3, 2 * SEGMENT + 90, 60, seq=3, cases=("C1",)),
    )
    (gap,) = interruptions(clips, 60)
    assert (gap.reason, gap.segment_s, gap.cases) == ("split_recording", SEGMENT, ())


# -- sequence holes --------------------------------------------------------------------------------


def test_a_sequence_hole_always_counts() -> None:
    clips = [
        clip(1, 0, seq=7),
        clip(2, 60, seq=8),
        clip(3, 120, seq=11),  # 9 and 10 never arrived, no pause at all
        clip(4, 99_999, seq=13, session=2),  # 12 missing, across dockings too
    ]
    found = interruptions(clips, 60)
    assert ids(found) == ["s2-3", "s3-4"]
    first, second = found
    assert (first.kind, first.reason, first.counts) == ("sequence_hole", "sequence_hole", True)
    assert (first.missing, first.session_id) == ((9, 10), 1)
    assert first.start == clips[1].end and first.end == clips[2].start
    assert first.as_json()["missing_sequence"] == [9, 10]
    assert (second.missing, second.session_id) == ((12, 12), 2)


def test_a_sequence_reset_or_repeat_is_no_hole() -> None:
    clips = [clip(1, 0, seq=9998), clip(2, 60, seq=9999), clip(3, 120, seq=1), clip(4, 180, seq=2)]
    assert interruptions(clips, 60) == []
    assert interruptions([clip(1, 0, seq=4), clip(2, 60, seq=4)], 60) == []


def test_clips_without_a_number_are_skipped_for_holes() -> None:
    clips = [clip(1, 0, seq=1), clip(2, 60, seq=None), clip(3, 120, seq=2), clip(4, 180, seq=4)]
    found = interruptions(clips, 60)
    assert ids(found) == ["s3-4"] and found[0].missing == (3, 3)


def test_order_follows_recording_time_not_id_or_input_order() -> None:
    clips = [clip(5, 0, seq=1), clip(2, 60, seq=2), clip(9, 120, seq=4)]
    assert ids(interruptions(list(reversed(clips)), 60)) == ["s2-9"]


def test_a_case_pause_and_a_hole_between_the_same_two_recordings() -> None:
    clips = [clip(1, 0, seq=1, cases=("C1",)), clip(2, 500, seq=3, cases=("C1",))]
    found = interruptions(clips, 60)
    assert [(g.id, g.kind, g.reason) for g in found] == [
        ("t1-2", "time_gap", "case_pause"), ("s1-2", "sequence_hole", "sequence_hole"),
    ]  # fmt: skip


def test_devices_are_separate() -> None:
    clips = [
        clip(1, 0, SEGMENT, serial="A", seq=1),
        clip(2, SEGMENT, SEGMENT, serial="A", seq=2),
        clip(3, 2 * SEGMENT, SEGMENT, serial="A", seq=3),
        clip(4, 3 * SEGMENT + 100, 60, serial="A", seq=4),  # A: split, cut off 100 s
        clip(5, 0, SEGMENT, serial="B", seq=5),
        clip(6, SEGMENT + 100, 60, serial="B", seq=6),  # B has shown no segment length
    ]
    found = interruptions(clips, 60)
    assert [(g.id, g.device_serial, g.reason) for g in found] == [
        ("t3-4", "A", "split_recording"), ("t5-6", "B", "pause"),
    ]  # fmt: skip


def test_as_json() -> None:
    clips = shift([SEGMENT, SEGMENT, SEGMENT, 30], [0, 0, 90.5])
    (gap,) = interruptions(clips, 60)
    assert gap.as_json() == {
        "gap": "t3-4",
        "kind": "time_gap",
        "reason": "split_recording",
        "counts": True,
        "device_serial": "CAM1",
        "session": 1,
        "before": 3,
        "after": 4,
        "from": "2026-11-25T01:30:00Z",
        "to": "2026-11-25T01:31:30.500000Z",
        "seconds": 90.5,
        "missing_sequence": None,
        "segment_seconds": SEGMENT,
        "cases": [],
    }
    pause = interruptions(shift([30, 30], [61]), 60)[0].as_json()
    assert (pause["reason"], pause["counts"], pause["segment_seconds"]) == ("pause", False, None)


def test_an_interruption_built_by_hand_counts() -> None:
    gap = Interruption("t1-2", "time_gap", "CAM1", 1, 1, 2, T0, T0 + timedelta(minutes=5))
    assert gap.reason is None and gap.counts and gap.as_json()["counts"] is True


def test_is_next_file() -> None:
    assert is_next_file(clip(1, 0, seq=4), clip(2, 0, seq=5))
    assert is_next_file(clip(1, 0), clip(2, 0))
    for a, b in [(4, 6), (4, 4), (4, 3), (4, None), (None, 5)]:
        assert not is_next_file(clip(1, 0, seq=a), clip(2, 0, seq=b))


# -- properties -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """A day of one camera that splits at `segment` s: recordings (incidents) split into
    back-to-back numbered segments, with pauses between incidents; nothing missing."""

    clips: list[Clip]
    segment: float
    # The indices (in `clips`) of the segments the camera continued into the next file.
    joins: list[int]


@st.composite
def cameras(draw: st.DrawFn, serial: str = "CAM1") -> Camera:
    segment = draw(st.sampled_from([60.0, 300.0, 600.0, 1800.0]))
    clips: list[Clip] = []
    joins: list[int] = []
    moment, seq = 0.0, draw(st.integers(1, 500))
    for _ in range(draw(st.integers(1, 8))):
        # A new incident: at least a few seconds after the last (an officer who
        # restarts within JOIN_S looks like a camera that continued).
        moment += draw(st.floats(5, 4 * 3600, allow_nan=False))
        total = draw(st.floats(5, 4 * segment, allow_nan=False))
        while True:
            last = total <= segment
            # The last part ends where the officer stopped: never within the tolerance
            # of a whole segment (that would look like a recording cut at the split).
            length = min(total, segment - LENGTH_TOLERANCE_S - 0.5) if last else segment
            # Names carry whole seconds: each start is up to 1 s early.
            start = moment - draw(st.floats(0, 1, allow_nan=False))
            clips.append(clip(len(clips) + 1, start, length, seq=seq, serial=serial))
            seq += 1
            moment += length
            if last:
                break
            joins.append(len(clips) - 1)
            total -= segment
    return Camera(clips, segment, joins)


@settings(max_examples=150)
@given(cameras())
def test_a_camera_that_loses_nothing_has_no_interruption(camera: Camera) -> None:
    """Incidents of any length, split by the camera, any pauses between them: 0 counted."""
    assert counted(interruptions(camera.clips, 60)) == []


@settings(max_examples=150)
@given(cameras(), st.data())
def test_cutting_a_split_recording_counts_exactly_there(
    camera: Camera, data: st.DataObject
) -> None:
    """Delay the rest of the day after one split by more than the threshold (the
    recording was cut off there and resumed, or that footage is missing): exactly
    that gap counts, as a split recording; nothing else changes."""
    # The camera must still show its length twice once this join is cut.
    assume(len(camera.joins) > MIN_JOINS)
    at = data.draw(st.sampled_from(camera.joins))
    # Over the threshold even after the up to 1 s that names lose.
    hole = timedelta(seconds=data.draw(st.floats(61.01, 3600, allow_nan=False)))
    delayed = [
        c if k <= at else Clip(c.id, c.device_serial, c.session_id, c.sequence,
                               c.start + hole, c.end + hole)
        for k, c in enumerate(camera.clips)
    ]  # fmt: skip
    before, after = camera.clips[at], camera.clips[at + 1]
    found = counted(interruptions(delayed, 60))
    assert [(g.id, g.reason) for g in found] == [(f"t{before.id}-{after.id}", "split_recording")]
    assert found[0].segment_s is not None
    assert abs(found[0].segment_s - camera.segment) <= LENGTH_TOLERANCE_S


@st.composite
def fleets(draw: st.DrawFn) -> list[Clip]:
    clips = []
    moment = 0.0
    seq = 1
    n = draw(st.integers(0, 15))
    for i in range(n):
        moment += draw(st.sampled_from([0.0, 0.5, 90.0, 700.0, 1200.0]))
        moment += draw(st.floats(0, 600, allow_nan=False))
        seq = draw(st.sampled_from([seq + 1, seq + 1, seq + 1, seq + 3, 1]))
        clips.append(
            clip(
                draw(st.integers(1, 10_000)) * 100 + i,
                moment,
                draw(st.sampled_from([SEGMENT, SEGMENT, 0.0]))
                or draw(st.floats(1, 700, allow_nan=False)),
                seq=draw(st.sampled_from([seq, seq, None])),
                session=draw(st.sampled_from([1, 1, 2, None])),
                serial=draw(st.sampled_from(["A", "B"])),
                cases=draw(st.sampled_from([(), (), ("C1",), ("C2",), ("C1", "C2")])),
            )
        )
        moment += clips[-1].seconds
    return clips


REASONS = {"sequence_hole", "split_recording", "case_pause", "pause"}


@settings(max_examples=120)
@given(fleets(), st.randoms(use_true_random=False), st.sampled_from([0.0, 900.0]))
def test_ids_are_stable(clips: list[Clip], rng: random.Random, max_s: float) -> None:
    """A gap's id depends only on the two recordings around it, not on the input order
    or on other devices' footage; each says which rule made it count, if any."""
    found = interruptions(clips, 60, max_s)
    shuffled = list(clips)
    rng.shuffle(shuffled)
    assert interruptions(shuffled, 60, max_s) == found
    only_a = [c for c in clips if c.device_serial == "A"]
    assert interruptions(only_a, 60, max_s) == [g for g in found if g.device_serial == "A"]
    assert len(ids(found)) == len(set(ids(found)))
    by_id = {c.id: c for c in clips}
    for gap in found:
        assert gap.id == f"{gap.id[0]}{gap.before}-{gap.after}"
        assert parse_gap_id(gap.id) == (gap.before, gap.after)
        assert gap.reason in REASONS and gap.counts == (gap.reason != "pause")
        a, b = by_id[gap.before], by_id[gap.after]
        assert a.device_serial == b.device_serial == gap.device_serial
        if gap.kind == "sequence_hole":
            assert gap.id[0] == "s" and gap.reason == "sequence_hole"
            continue
        assert gap.id[0] == "t" and gap.seconds > 60
        if gap.reason == "pause":
            assert a.session_id is not None and a.session_id == b.session_id
        elif gap.reason == "case_pause":
            assert set(gap.cases) == a.cases & b.cases != set()
            assert not max_s or gap.seconds <= max_s
        else:
            assert is_next_file(a, b) and gap.segment_s is not None


@settings(max_examples=80)
@given(fleets(), st.data())
def test_more_links_or_footage_only_add_interruptions(
    clips: list[Clip], data: st.DataObject
) -> None:
    """Linking a recording to a case, or docking more footage, never makes a counted
    interruption stop counting, so an explanation is never of something vanished."""
    if not clips:
        return
    before = {g.id for g in counted(interruptions(clips, 60))}
    k = data.draw(st.integers(0, len(clips) - 1))
    linked = [
        Clip(c.id, c.device_serial, c.session_id, c.sequence, c.start, c.end, c.cases | {"C9"})
        if i == k else c
        for i, c in enumerate(clips)
    ]  # fmt: skip
    assert before <= {g.id for g in counted(interruptions(linked, 60))}
    # A later docking: the same device's footage after all of it.
    last = max(c.end for c in clips)
    extra = [
        Clip(900_000 + i, c.device_serial, 99, c.sequence, c.start - clips[0].start + last
             + timedelta(days=1), c.end - clips[0].start + last + timedelta(days=1))
        for i, c in enumerate(clips)
    ]  # fmt: skip
    assert before <= {g.id for g in counted(interruptions(clips + extra, 60))}


def test_parse_gap_id() -> None:
    assert parse_gap_id("t12-13") == (12, 13)
    assert parse_gap_id("  s1-200\n") == (1, 200)
    for bad in ["", "x1-2", "t1", "t-1-2", "t1-2-3", "T1-2", "t1_2", "s a-b", "t1-2 extra"]:
        with pytest.raises(DockdError, match="not a gap id"):
            parse_gap_id(bad)
