"""The hash-chained evidence log: entry format and chain checking (pure).

An entry is canonical JSON with exactly these keys:

    v     format version, 1
    seq   position in the log, 1-based, no gaps
    time  UTC time of the change, `YYYY-MM-DDThh:mm:ss[.ffffff]Z`
    kind  stable event name, e.g. `recording.ingested`
    data  object: the change itself
    prev  lower-case hex SHA-256 of the previous entry's bytes
          (64 zeros for the first entry)

The chain hash of an entry is SHA-256 over its bytes. The Merkle tree of a
later format layer hashes the same bytes as RFC 9162 leaves, so these bytes
must never change shape: add keys under `data`, never at the top.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dockd.clock import isoformat_utc
from dockd.errors import VerifyError
from dockd.integrity.canonical import canonical_json, parse_canonical

FORMAT_VERSION = 1
GENESIS = "0" * 64
_KEYS = frozenset({"v", "seq", "time", "kind", "data", "prev"})


@dataclass(frozen=True)
class LogEntry:
    seq: int
    time: str
    kind: str
    data: dict[str, Any]
    prev: str

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "v": FORMAT_VERSION,
                "seq": self.seq,
                "time": self.time,
                "kind": self.kind,
                "data": self.data,
                "prev": self.prev,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> LogEntry:
        value = parse_canonical(raw)
        if not isinstance(value, dict) or set(value) != _KEYS:
            raise VerifyError(f"log entry must have exactly the keys {sorted(_KEYS)}")
        if value["v"] != FORMAT_VERSION:
            raise VerifyError(f"unknown log entry version {value['v']!r}")
        seq, time, kind, data, prev = (value[k] for k in ("seq", "time", "kind", "data", "prev"))
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise VerifyError("log entry seq must be a positive integer")
        if not (isinstance(time, str) and isinstance(kind, str) and isinstance(data, dict)):
            raise VerifyError("log entry time/kind/data have the wrong types")
        if not (isinstance(prev, str) and len(prev) == 64 and _is_hex(prev)):
            raise VerifyError("log entry prev must be 64 lower-case hex digits")
        return cls(seq=seq, time=time, kind=kind, data=data, prev=prev)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def entry_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def next_entry(
    prev_seq: int, prev_hash: str, moment: datetime, kind: str, data: dict[str, Any]
) -> LogEntry:
    """The entry that follows the one numbered `prev_seq` with hash `prev_hash`."""
    return LogEntry(
        seq=prev_seq + 1, time=isoformat_utc(moment), kind=kind, data=data, prev=prev_hash
    )


@dataclass(frozen=True)
class Problem:
    """One thing `verify` found wrong. `kind` is stable, `where` names the place."""

    kind: str
    where: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "detail": self.detail}


@dataclass(frozen=True)
class StoredEntry:
    """A log row as the catalog holds it: position, bytes and recorded hash."""

    seq: int
    raw: bytes
    hash: str


def check_chain(rows: Iterable[StoredEntry]) -> list[Problem]:
    """Walk the log in storage order and list every break in it.

    Detects a changed entry (its bytes no longer hash to the recorded hash,
    or the next entry's `prev` no longer matches), a missing entry (a gap in
    `seq`) and reordered entries (seq out of order, or `prev` pointing at
    another entry). Requires rows in ascending storage order.
    """
    problems: list[Problem] = []
    expected_seq = 1
    prev_hash = GENESIS
    for row in rows:
        where = f"log entry {row.seq}"
        actual = entry_hash(row.raw)
        if actual != row.hash:
            problems.append(
                Problem("log_entry_changed", where, "entry bytes do not match the recorded hash")
            )
        try:
            entry = LogEntry.from_bytes(row.raw)
        except VerifyError as exc:
            problems.append(Problem("log_entry_malformed", where, str(exc)))
            expected_seq = row.seq + 1
            prev_hash = actual
            continue
        if entry.seq != row.seq:
            problems.append(
                Problem(
                    "log_entry_reordered", where, f"entry says seq {entry.seq}, stored at {row.seq}"
                )
            )
        if row.seq > expected_seq:
            gap = row.seq - expected_seq
            problems.append(
                Problem(
                    "log_entry_missing",
                    f"log entries {expected_seq}..{row.seq - 1}",
                    f"{gap} entr{'y' if gap == 1 else 'ies'} missing",
                )
            )
        elif row.seq < expected_seq:
            problems.append(Problem("log_entry_reordered", where, f"expected seq {expected_seq}"))
        if entry.prev != prev_hash:
            problems.append(
                Problem(
                    "log_chain_broken",
                    where,
                    "prev does not match the hash of the entry before it "
                    "(that entry was changed, removed or moved)",
                )
            )
        expected_seq = max(expected_seq, row.seq) + 1
        prev_hash = actual
    return problems
