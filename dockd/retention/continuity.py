"""Interruptions in a device's footage (R3, R7), pure.

What the regulations want explained is footage that was cut off and
resumed, or that is missing -- not the ordinary pause between two incidents:

- 003_c057b48cfb56e612.txt Art. 12 (4): once recording has begun, at the same
  enforcement location it may not be discontinuous (不得断续记录), selective,
  or completed afterwards;
- 002_f200e2d1272770f4.txt Art. 13: a recording stopped by a fault, damage,
  a flat battery, full storage or bad weather is explained by voice when it
  restarts, or in writing afterwards. dockd cannot hear the voice note; it
  lists the interruptions so that a written one can be recorded against each
  (`dockd gap explain`).

Two kinds, each with an id that depends only on the two recordings around it
(so an explanation recorded once stays attached whatever else arrives):

- `s<a>-<b>`, a sequence hole: numbers skipped between recording a and the
  next numbered recording b of the same device (by start time), e.g. 0007
  then 0010. A file the camera wrote is missing. It always counts. A number
  that goes down (the camera restarted its count) or repeats is no hole.
- `t<a>-<b>`, a time gap: recording b directly follows recording a on the
  same device (by start time) and starts more than `threshold_s` after a
  ended. It counts, with the first reason that applies:

  1. `split_recording`: a and b are segments of one recording. A recorder
     splits a continuous recording into files of a fixed length (分段录像,
     settable on the camera) and starts the next file where the last one
     ended, with the next sequence number. So a and b are segments of one
     recording when b is a's next file (b.sequence == a.sequence + 1, or
     neither has a number) and a ran the device's segment length: within
     `LENGTH_TOLERANCE_S` of a length at which this device has been seen,
     at least `MIN_JOINS` times, to continue a recording into its next
     file (a pair of next files, the second starting within `JOIN_S` of
     the end of the first, the first at least `MIN_SEGMENT_S` long). The
     camera, not the officer, closed a, so its continuation should have
     started at once: the pause is footage that is missing, or a recording
     cut off at the split (full storage, for one, stops a camera as it opens
     its next file) and resumed. A recording that the officer happened to
     stop within the tolerance of a whole number of segments looks the same
     and counts too (rare: about 2 * LENGTH_TOLERANCE_S in a segment length;
     its explanation says so); a camera that has not yet shown its segment
     length twice has none, and its pauses stay ordinary until it does.
  2. `case_pause`: a and b are linked to one case (catalog case links) and
     the pause is at most `max_s` (0: no bound): two parts of one incident
     with a hole in between.

  Any other time gap within one docking session is an ordinary pause
  (reason `pause`): listed (`dockd gap list --all`), explainable, but not
  counted as an interruption. Pauses across docking sessions are not listed
  (a docking ends a shift), but a split recording or a case pause counts
  across them too: the camera's evidence does not depend on when it docked.

Whether a gap counts may depend on more than its two recordings: the segment
length is learnt from the whole device's footage, and case links change.
Learning only grows (recordings are never removed from the catalog, a
deleted one stays as a tombstone with its times), so later footage can make
a pause count, never the other way; only unlinking a case can make a case
pause ordinary again. Either way its id, and any explanation, stay.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby, pairwise
from typing import Any

from dockd.clock import isoformat_utc
from dockd.errors import UsageError

GAP_ID_RE = re.compile(r"^[ts](\d+)-(\d+)$")

KIND_TIME_GAP = "time_gap"
KIND_SEQUENCE_HOLE = "sequence_hole"

REASON_SEQUENCE_HOLE = "sequence_hole"
REASON_SPLIT = "split_recording"
REASON_CASE = "case_pause"
REASON_PAUSE = "pause"  # listed, never counted

# The next segment of a split recording starts where the last one ended, up
# to the resolution of what dockd knows of the times: file names carry whole
# seconds (both ends truncated: up to 1 s each way) and FAT times even seconds.
JOIN_S = 3.0
# Segments a camera cuts at one setting differ by about a keyframe interval
# (it cuts at a keyframe): 1-2 s at the usual 25-30 fps and 1-2 s GOPs.
LENGTH_TOLERANCE_S = 2.0
# Recorders offer segment lengths of a minute and more. An officer who stops
# and at once restarts can make a shorter pair of back-to-back files; it
# teaches no segment length (half a minute keeps a 1-minute setting cut a
# little early well inside).
MIN_SEGMENT_S = 30.0
# How often a length must be seen continued before it counts as the camera's.
MIN_JOINS = 2


@dataclass(frozen=True)
class Clip:
    id: int
    device_serial: str
    session_id: int | None
    sequence: int | None
    start: datetime
    end: datetime
    # The cases it is linked to (catalog case_links), by case number.
    cases: frozenset[str] = frozenset()

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Interruption:
    id: str
    kind: str  # "time_gap" | "sequence_hole"
    device_serial: str
    session_id: int | None
    before: int
    after: int
    # From the end of `before` to the start of `after`.
    start: datetime
    end: datetime
    # Sequence numbers that never arrived (sequence holes only), inclusive.
    missing: tuple[int, int] | None = None
    # The rule that made it count (REASON_*), or REASON_PAUSE: listed only.
    # None only for one built by hand, which counts.
    reason: str | None = None
    # split_recording: the segment length of the device that `before` ran.
    segment_s: float | None = None
    # case_pause: the cases both recordings are linked to.
    cases: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def counts(self) -> bool:
        """An interruption to explain (002 Art. 13), not an ordinary pause."""
        return self.reason != REASON_PAUSE

    def as_json(self) -> dict[str, Any]:
        return {
            "gap": self.id,
            "kind": self.kind,
            "reason": self.reason,
            "counts": self.counts,
            "device_serial": self.device_serial,
            "session": self.session_id,
            "before": self.before,
            "after": self.after,
            "from": isoformat_utc(self.start),
            "to": isoformat_utc(self.end),
            "seconds": round(self.seconds, 3),
            "missing_sequence": list(self.missing) if self.missing else None,
            "segment_seconds": self.segment_s,
            "cases": list(self.cases),
        }


@dataclass(frozen=True)
class GapExplanation:
    """An officer's written explanation of an interruption (002 Art. 13), as logged."""

    id: int
    gap: str
    device_serial: str
    text: str
    by: str | None
    at: str
    log_seq: int

    def as_json(self) -> dict[str, Any]:
        """The shape `dockd gap list --json` shows under "explanations"."""
        return {"text": self.text, "by": self.by, "at": self.at, "log_entry": self.log_seq}


def parse_gap_id(text: str) -> tuple[int, int]:
    found = GAP_ID_RE.match(text.strip())
    if not found:
        raise UsageError(
            f"not a gap id: {text!r} (t<id>-<id> or s<id>-<id>, as `dockd gap list` shows)"
        )
    return int(found.group(1)), int(found.group(2))


def _pause(a: Clip, b: Clip) -> float:
    return (b.start - a.end).total_seconds()


def is_next_file(a: Clip, b: Clip) -> bool:
    """b is the file the camera wrote right after a: the next number, or neither numbered."""
    if a.sequence is None or b.sequence is None:
        return a.sequence is None and b.sequence is None
    return b.sequence == a.sequence + 1


def segment_lengths(device: Sequence[Clip]) -> tuple[float, ...]:
    """The camera's segment length(s): the lengths at which this device was seen, at
    least MIN_JOINS times, to continue a recording into its next file. Sorted;
    `device` in time order.

    One sighting is not enough: an officer who stops and at once restarts also
    makes a next file that starts where the last ended, at an arbitrary length.
    A camera's setting recurs: every recording longer than two segments shows it
    twice.
    """
    joined = sorted(
        a.seconds
        for a, b in pairwise(device)
        if is_next_file(a, b) and abs(_pause(a, b)) <= JOIN_S and a.seconds >= MIN_SEGMENT_S
    )
    confirmed = {
        round(n, 3)
        for n in joined
        if bisect_right(joined, n + LENGTH_TOLERANCE_S)
        - bisect_left(joined, n - LENGTH_TOLERANCE_S)
        >= MIN_JOINS
    }
    return tuple(sorted(confirmed))


def _segment_length_of(clip: Clip, lengths: Sequence[float]) -> float | None:
    """The segment length `clip` ran, if any (the closest one); `lengths` sorted."""
    low = bisect_left(lengths, clip.seconds - LENGTH_TOLERANCE_S)
    near = lengths[low : bisect_right(lengths, clip.seconds + LENGTH_TOLERANCE_S)]
    return min(near, key=lambda n: abs(clip.seconds - n)) if near else None


def _time_gap(
    a: Clip, b: Clip, lengths: Sequence[float], threshold_s: float, max_s: float
) -> Interruption | None:
    pause = _pause(a, b)
    if pause <= threshold_s:
        return None
    gap = Interruption(
        f"t{a.id}-{b.id}", KIND_TIME_GAP, a.device_serial, b.session_id, a.id, b.id,
        a.end, b.start,
    )  # fmt: skip
    if is_next_file(a, b):
        segment = _segment_length_of(a, lengths)
        if segment is not None:
            return replace(gap, reason=REASON_SPLIT, segment_s=segment)
    shared = tuple(sorted(a.cases & b.cases))
    if shared and (not max_s or pause <= max_s):
        return replace(gap, reason=REASON_CASE, cases=shared)
    if a.session_id is not None and a.session_id == b.session_id:
        return replace(gap, reason=REASON_PAUSE)
    return None  # between dockings: the end of a shift, not even listed


def interruptions(
    clips: Iterable[Clip], threshold_s: float, max_s: float = 900.0
) -> list[Interruption]:
    """Every sequence hole and time gap (counted or an ordinary pause), per device in
    time order: its time gaps first, then its holes. See the module docstring."""
    found: list[Interruption] = []
    ordered = sorted(clips, key=lambda c: (c.device_serial, c.start, c.id))
    for serial, group in groupby(ordered, key=lambda c: c.device_serial):
        device = list(group)
        lengths = segment_lengths(device)
        for a, b in pairwise(device):
            gap = _time_gap(a, b, lengths, threshold_s, max_s)
            if gap is not None:
                found.append(gap)
        numbered = [c for c in device if c.sequence is not None]
        for a, b in pairwise(numbered):
            assert a.sequence is not None and b.sequence is not None
            if b.sequence > a.sequence + 1:
                found.append(
                    Interruption(
                        f"s{a.id}-{b.id}", KIND_SEQUENCE_HOLE, serial, b.session_id, a.id, b.id,
                        a.end, b.start, (a.sequence + 1, b.sequence - 1),
                        reason=REASON_SEQUENCE_HOLE,
                    )
                )  # fmt: skip
    return found


def counted(gaps: Iterable[Interruption]) -> list[Interruption]:
    """Only the interruptions to explain, without the ordinary pauses."""
    return [g for g in gaps if g.counts]
