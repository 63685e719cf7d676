"""Which entries are about which recordings (dockd.integrity.naming): the scoping rule."""

from __future__ import annotations

from typing import Any

from dockd.integrity.chain import LogEntry
from dockd.integrity.naming import entries_about, recordings_named


def entry(seq: int, kind: str, **data: Any) -> LogEntry:
    return LogEntry(seq, "2026-01-01T00:00:00Z", kind, data, "")


LOG = [
    entry(1, "recording.ingested", recording=1),
    entry(2, "recording.ingested", recording=2),
    entry(3, "case.created", case="A-1", cause="theft", parties=["Zhang San"]),
    entry(4, "case.created", case="B-2", cause="fraud", parties=["Li Si"]),
    entry(5, "case.linked", case="A-1", recordings=[1]),
    entry(6, "case.linked", case="B-2", recordings=[2]),
    entry(7, "hold.set", hold=1, case="A-1", recordings=[]),
    entry(8, "hold.set", hold=2, case="B-2", recordings=[]),
    entry(9, "hold.released", hold=1),
    entry(10, "hold.released", hold=2),
    entry(11, "retention.updated", tiers={"2y": [1], "6m": [2]}, kept=[]),
    entry(12, "export.disc_built", label="D-1", recordings=[2]),
    entry(13, "export.disc_burned", label="D-1"),
    entry(14, "audit.done", recordings=[2], failures=[{"sha256": "x", "recordings": [1]}]),
    entry(15, "case.unlinked", case="A-1", recordings=[1]),
    entry(16, "case.closed", case="A-1"),
    entry(17, "export.planned", discs=[{"label": "D-1", "recordings": [2]}]),
    entry(18, "recording.tagged", recordings=[True, 2]),  # a bool is not an id
]


def test_recordings_named_reads_every_shape() -> None:
    assert recordings_named(LOG[10]) == {1, 2}
    assert recordings_named(LOG[13]) == {1, 2}
    assert recordings_named(LOG[16]) == {2}
    assert recordings_named(LOG[17]) == {2}
    assert recordings_named(entry(1, "session.started", recording=5)) == frozenset()


def test_entries_about_one_recording_leave_the_other_case_out() -> None:
    # Recording 1's case stays in the story after the unlink; nothing of B-2.
    assert entries_about(LOG, [1]) == [1, 3, 5, 7, 9, 11, 14, 15, 16]
    assert entries_about(LOG, [2]) == [2, 4, 6, 8, 10, 11, 12, 13, 14, 17, 18]


def test_entries_about_a_case_by_name() -> None:
    assert entries_about(LOG, [], cases=["B-2"]) == [4, 6, 8, 10]
