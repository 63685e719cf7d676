"""Which log entries are about which recordings: the one rule, for every scoped view.

A disc, a copy package, a scoped log export and a custody report each carry
the entries about some recordings and nothing about others (their parties
and causes stay on the dock: 001_a4d0be362abbcb47.txt Art. 29). What an
entry is "about" is decided here only:

- an entry names recordings directly (`recording`, `recordings`, ...: the
  field per kind is in RECORDING_FIELDS);
- or it names a case one of those recordings was ever linked to (case
  created, closed, reopened, a hold on the case, a request for the case);
- or it names a hold or a disc that covers them (`hold.released` names its
  hold, `export.disc_burned` its label).

Pure: entries in, sequence numbers out, in log order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from dockd.integrity.chain import LogEntry

# kind -> the data fields that hold one recording id or a list of them.
RECORDING_FIELDS: Mapping[str, tuple[str, ...]] = {
    "recording.ingested": ("recording",),
    "recording.tagged": ("recordings",),
    "recording.confidential": ("recordings",),
    "case.linked": ("recordings",),
    "case.unlinked": ("recordings",),
    "device.assigned": ("reattributed",),
    "hold.set": ("recordings",),
    "retention.pending": ("recordings",),
    "retention.deleted": ("recording",),
    "retention.restored": ("recording",),
    "retention.updated": ("kept",),  # and every list in `tiers`
    "report.spot_check": ("recordings",),
    "export.planned": (),  # every disc's `recordings`
    "export.disc_built": ("recordings",),
    "audit.done": ("recordings",),  # and each failure's `recordings`
    "access.requested": ("recordings",),
    "access.approved": ("recordings",),
    "access.refused": ("recordings",),
    "access.viewed": ("recording", "recordings"),
    "access.copied": ("recordings",),
    "access.denied": ("recordings",),
    "replicate.verified": ("recordings",),
    "replicate.extended": ("recordings",),
}

# kind -> the data field that names a case.
CASE_FIELDS: Mapping[str, str] = {
    "case.created": "case",
    "case.linked": "case",
    "case.unlinked": "case",
    "case.closed": "case",
    "case.reopened": "case",
    "hold.set": "case",
    "access.requested": "case",
}


def _ids(value: Any) -> Iterator[int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                yield item


def recordings_named(entry: LogEntry) -> frozenset[int]:
    """The recording ids `entry` names itself (not through a case, hold or disc)."""
    data = entry.data
    found: set[int] = set()
    for key in RECORDING_FIELDS.get(entry.kind, ()):
        found.update(_ids(data.get(key)))
    if entry.kind == "retention.updated" and isinstance(data.get("tiers"), dict):
        for ids in data["tiers"].values():
            found.update(_ids(ids))
    elif entry.kind == "export.planned":
        for disc in data.get("discs") or []:
            if isinstance(disc, dict):
                found.update(_ids(disc.get("recordings")))
    elif entry.kind == "audit.done":
        for failure in data.get("failures") or []:
            if isinstance(failure, dict):
                found.update(_ids(failure.get("recordings")))
    return frozenset(found)


def case_named(entry: LogEntry) -> str | None:
    field = CASE_FIELDS.get(entry.kind)
    value = entry.data.get(field) if field else None
    # case.created logged its number as `case` (older entries: `no`).
    if value is None and entry.kind == "case.created":
        value = entry.data.get("no")
    return value if isinstance(value, str) else None


def entries_about(
    entries: Iterable[LogEntry],
    recordings: Iterable[int],
    cases: Iterable[str] = (),
) -> list[int]:
    """The sequence numbers of the entries about `recordings` (and the named `cases`).

    The cases that count are those given and those any of the recordings
    was ever linked to (a link since undone still tells the story).
    """
    wanted = set(recordings)
    items = list(entries)
    relevant_cases = set(cases)
    for entry in items:
        if entry.kind == "case.linked" and wanted & recordings_named(entry):
            name = case_named(entry)
            if name is not None:
                relevant_cases.add(name)
    holds: set[int] = set()
    labels: set[str] = set()
    chosen: list[int] = []
    for entry in items:
        named = recordings_named(entry)
        about = bool(wanted & named) or case_named(entry) in relevant_cases
        if entry.kind == "hold.set" and about and isinstance(entry.data.get("hold"), int):
            holds.add(entry.data["hold"])
        elif entry.kind == "hold.released":
            about = entry.data.get("hold") in holds
        elif entry.kind == "export.disc_built" and about:
            labels.add(str(entry.data.get("label")))
        elif entry.kind == "export.disc_burned":
            about = str(entry.data.get("label")) in labels
        if about:
            chosen.append(entry.seq)
    return chosen
