"""Interruptions in a device's footage (R3, R7), pure.

003_c057b48cfb56e612.txt Art. 12: no discontinuous or selective recording.
002_f200e2d1272770f4.txt Art. 13: a recording interrupted by a fault,
battery or storage is explained by voice when it restarts, or in writing
afterwards. dockd cannot hear the voice note; it lists every pause and
every hole in a camera's sequence numbers so that a written explanation
can be recorded against it (`dockd gap explain`).

Two kinds, each with an id that depends only on the two recordings around it:
- `t<a>-<b>`: a pause longer than the threshold between recording a and
  the next recording b of the same docking session;
- `s<a>-<b>`: sequence numbers skipped between recording a and the next
  recording b of the same device (by start time), e.g. 0007 then 0010. A
  number that goes down (the camera restarted its count) is no hole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby, pairwise
from typing import Any

from dockd.clock import isoformat_utc
from dockd.errors import UsageError

GAP_ID_RE = re.compile(r"^[ts](\d+)-(\d+)$")


@dataclass(frozen=True)
class Clip:
    id: int
    device_serial: str
    session_id: int | None
    sequence: int | None
    start: datetime
    end: datetime


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

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def as_json(self) -> dict[str, Any]:
        return {
            "gap": self.id,
            "kind": self.kind,
            "device_serial": self.device_serial,
            "session": self.session_id,
            "before": self.before,
            "after": self.after,
            "from": isoformat_utc(self.start),
            "to": isoformat_utc(self.end),
            "seconds": round(self.seconds, 3),
            "missing_sequence": list(self.missing) if self.missing else None,
        }


def parse_gap_id(text: str) -> tuple[int, int]:
    found = GAP_ID_RE.match(text.strip())
    if not found:
        raise UsageError(
            f"not a gap id: {text!r} (t<id>-<id> or s<id>-<id>, as `dockd gap list` shows)"
        )
    return int(found.group(1)), int(found.group(2))


def interruptions(
    clips: Iterable[Clip], threshold_s: float, max_s: float = 0.0
) -> list[Interruption]:
    """Every time gap and sequence hole, per device in time order."""
    found: list[Interruption] = []
    ordered = sorted(clips, key=lambda c: (c.device_serial, c.start, c.id))
    for serial, group in groupby(ordered, key=lambda c: c.device_serial):
        device = list(group)
        for a, b in pairwise(device):
            pause = (b.start - a.end).total_seconds()
            if (
                a.session_id is not None
                and a.session_id == b.session_id
                and pause > threshold_s
                and (not max_s or pause <= max_s)
            ):
                found.append(
                    Interruption(f"t{a.id}-{b.id}", "time_gap", serial, a.session_id, a.id, b.id,
                                 a.end, b.start)
                )  # fmt: skip
        numbered = [c for c in device if c.sequence is not None]
        for a, b in pairwise(numbered):
            assert a.sequence is not None and b.sequence is not None
            if b.sequence > a.sequence + 1:
                found.append(
                    Interruption(
                        f"s{a.id}-{b.id}", "sequence_hole", serial, b.session_id, a.id, b.id,
                        a.end, b.start, (a.sequence + 1, b.sequence - 1),
                    )
                )  # fmt: skip
    return found
