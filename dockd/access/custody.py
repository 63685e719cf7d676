"""The chain-of-custody report (issue 15): every logged event of some recordings, with proofs.

Pure: the log's entry bytes, a signed checkpoint, its keys and a source of
inclusion paths in; a `CustodyReport` out. No files, no database, no clock
(the moment it is generated at is passed in).

- Which entries belong to the report is decided by `entries_about`
  (integrity/naming.py), the one scoping rule; nothing here widens it.
- Each event says, in English and in Chinese, what the entry records about
  the report's recordings. Other recordings an entry names are never listed
  (at most counted); an entry of a kind without a description is still
  listed, by its kind and who made it, never dropped.
- Each event carries the RFC 9162 §2.1.1 leaf hash of its entry bytes. An
  entry inside the checkpoint (seq <= tree size) also carries its RFC 9162
  §2.1.3 inclusion path (leaf index seq - 1), checked here against the
  checkpoint's root: a report never carries a proof that does not verify
  (fails closed, CustodyError). An entry logged after the checkpoint is
  listed all the same with `in_checkpoint` False and no path ("not yet in a
  signed checkpoint"); a later checkpoint covers it.
- The checkpoint is a C2SP tlog-checkpoint in a C2SP signed note
  (integrity/checkpoint.py, note.py); it must verify with one of `keys`.
  The report's origin, tree size and root hash are read from it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from dockd.access.custody_words import DESCRIPTIONS, describe, id_ranges, rec_en, rec_zh
from dockd.clock import isoformat_utc
from dockd.errors import DockdError, UsageError, VerifyError
from dockd.integrity.chain import LogEntry
from dockd.integrity.checkpoint import Checkpoint
from dockd.integrity.merkle import leaf_hash, verify_inclusion
from dockd.integrity.naming import entries_about, recordings_named
from dockd.integrity.note import VerifierKey, open_note

FORMAT = "dockd-custody/1"


class CustodyError(VerifyError):
    """The entries, checkpoint or proofs given cannot make a true custody report."""


@dataclass(frozen=True)
class CustodyEvent:
    """One log entry about the report's recordings.

    `recordings` are those of the report's recordings the entry concerns
    (empty for a case-level entry such as case.closed). `inclusion_path` is
    empty when `in_checkpoint` is False, and also for the only leaf of a tree
    of size 1: read `in_checkpoint`, not the path's length.
    """

    seq: int
    time: str
    kind: str
    by: str | None
    recordings: tuple[int, ...]
    what_en: str
    what_zh: str
    leaf_hash: str  # base64 of SHA-256(0x00 || entry bytes)
    in_checkpoint: bool
    inclusion_path: tuple[str, ...]  # base64 hashes, leaf to root

    @property
    def leaf_index(self) -> int:
        return self.seq - 1

    def as_json(self) -> dict[str, Any]:
        return {**_fields_of(self), "leaf_index": self.leaf_index}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustodyEvent:
        """Back from `as_json` (the daemon's answer); the report is not re-checked."""
        return cls(**_from_fields(cls, data))


@dataclass(frozen=True)
class CustodyReport:
    subject: str  # "recording 7", "case A-1 (3 recordings)"
    subject_zh: str  # "录像 7", "案件 A-1（3 条录像）"
    recordings: tuple[int, ...]
    case: str | None
    origin: str
    generated_at: str  # ISO UTC
    tree_size: int
    root_hash: str  # base64, from the checkpoint
    checkpoint: str  # the signed note
    keys: tuple[str, ...]  # verifier keys, name+id+key
    signed_by: tuple[str, ...]  # those of `keys` whose signature on the note verified
    events: tuple[CustodyEvent, ...]

    @property
    def unproven(self) -> tuple[CustodyEvent, ...]:
        """The events logged after the checkpoint."""
        return tuple(e for e in self.events if not e.in_checkpoint)

    def as_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **_fields_of(self), "events": [e.as_json() for e in self.events]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CustodyReport:
        """Back from `as_json` (the daemon's answer), to render it; not re-checked."""
        if data.get("format") != FORMAT:
            raise UsageError(f"not a custody report of format {FORMAT}")
        values = _from_fields(cls, data)
        values["events"] = tuple(CustodyEvent.from_json(e) for e in data["events"])
        return cls(**values)


def _from_fields(cls: type[Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The dataclass's fields from JSON: arrays back to tuples."""
    return {
        f.name: tuple(data[f.name]) if isinstance(data[f.name], list) else data[f.name]
        for f in fields(cls)
    }


def _fields_of(value: CustodyEvent | CustodyReport) -> dict[str, Any]:
    """The dataclass's fields by name, tuples as lists (JSON arrays)."""
    found = ((f.name, getattr(value, f.name)) for f in fields(value))
    return {name: list(v) if isinstance(v, tuple) else v for name, v in found}


ProofSource = Callable[[int], Sequence[bytes]]


def custody_report(
    raw_entries: Sequence[bytes],
    recordings: Iterable[int],
    *,
    case: str | None,
    proofs: ProofSource,
    checkpoint: str,
    keys: Sequence[str],
    generated_at: datetime,
) -> CustodyReport:
    """The custody report of `recordings` (and of `case`, if given).

    Requires `raw_entries` to be the log's entries from seq 1 on, in order,
    at least up to the checkpoint's tree size (later ones are listed as not
    yet checkpointed); all of them, so that a case link logged late still
    brings in the case's earlier entries. `proofs(seq)` is the inclusion
    path of leaf seq - 1 in the tree of the checkpoint's size; it is asked
    only for 1 <= seq <= that size. `keys` are verifier keys (name+id+key)
    of which at least one must have signed `checkpoint`.

    Raises UsageError when neither recordings nor a case is given, and
    CustodyError when the entries, checkpoint or a proof do not hold.
    """
    wanted = tuple(sorted(set(recordings)))
    if not wanted and case is None:
        raise UsageError("a custody report needs recordings or a case")
    body, signed_by = _open_checkpoint(checkpoint, keys)
    entries = _parse(raw_entries)
    if len(entries) < body.size:
        raise CustodyError(
            f"the checkpoint covers {body.size} log entries, but only {len(entries)} were given"
        )
    mine = frozenset(wanted)
    holds: dict[int, tuple[int, ...]] = {}
    discs: dict[str, tuple[int, ...]] = {}
    events: list[CustodyEvent] = []
    for seq in entries_about(entries, wanted, () if case is None else (case,)):
        entry, raw = entries[seq - 1], raw_entries[seq - 1]
        concerns = tuple(sorted(recordings_named(entry) & mine))
        data = entry.data
        if entry.kind == "hold.set" and isinstance(data.get("hold"), int):
            holds[data["hold"]] = concerns
        elif entry.kind == "hold.released":
            hold = data.get("hold")
            concerns = holds.get(hold, ()) if isinstance(hold, int) else ()
        elif entry.kind == "export.disc_built":
            discs[str(data.get("label"))] = concerns
        elif entry.kind == "export.disc_burned":
            concerns = discs.get(str(data.get("label")), ())
        events.append(_event(entry, raw, concerns, mine, body, proofs))
    subject, subject_zh = _subject(wanted, case)
    return CustodyReport(
        subject=subject,
        subject_zh=subject_zh,
        recordings=wanted,
        case=case,
        origin=body.origin,
        generated_at=isoformat_utc(generated_at),
        tree_size=body.size,
        root_hash=_b64(body.root),
        checkpoint=checkpoint,
        keys=tuple(keys),
        signed_by=signed_by,
        events=tuple(events),
    )


def _open_checkpoint(note: str, keys: Sequence[str]) -> tuple[Checkpoint, tuple[str, ...]]:
    try:
        opened = open_note(note, [VerifierKey.from_text(k) for k in keys])
        return Checkpoint.from_text(opened.text), tuple(k.to_text() for k in opened.verified_by)
    except DockdError as exc:
        raise CustodyError(f"the checkpoint does not hold: {exc}") from None


def _parse(raw_entries: Sequence[bytes]) -> list[LogEntry]:
    entries: list[LogEntry] = []
    for position, raw in enumerate(raw_entries, start=1):
        try:
            entry = LogEntry.from_bytes(raw)
        except DockdError as exc:
            raise CustodyError(f"log entry {position} does not parse: {exc}") from None
        if entry.seq != position:
            raise CustodyError(f"log entry {position} says seq {entry.seq}: entries out of order")
        entries.append(entry)
    return entries


def _event(
    entry: LogEntry,
    raw: bytes,
    concerns: tuple[int, ...],
    mine: frozenset[int],
    body: Checkpoint,
    proofs: ProofSource,
) -> CustodyEvent:
    leaf = leaf_hash(raw)
    path: tuple[bytes, ...] = ()
    inside = entry.seq <= body.size
    if inside:
        path = tuple(proofs(entry.seq))
        if not verify_inclusion(entry.seq - 1, body.size, leaf, path, body.root):
            raise CustodyError(
                f"the inclusion proof of log entry {entry.seq} does not lead to the "
                f"checkpoint's root (tree size {body.size}); run `dockd verify`"
            )
    en, zh = describe(entry, concerns, mine)
    by = entry.data.get("by")
    return CustodyEvent(
        seq=entry.seq,
        time=entry.time,
        kind=entry.kind,
        by=by if isinstance(by, str) else None,
        recordings=concerns,
        what_en=en,
        what_zh=zh,
        leaf_hash=_b64(leaf),
        in_checkpoint=inside,
        inclusion_path=tuple(_b64(h) for h in path),
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _subject(wanted: tuple[int, ...], case: str | None) -> tuple[str, str]:
    if case is not None:
        n = len(wanted)
        return f"case {case} ({n} recording{'' if n == 1 else 's'})", f"案件 {case}（{n} 条录像）"
    return rec_en(wanted), rec_zh(wanted)


__all__ = [
    "DESCRIPTIONS",
    "FORMAT",
    "CustodyError",
    "CustodyEvent",
    "CustodyReport",
    "custody_report",
    "describe",
    "id_ranges",
]
