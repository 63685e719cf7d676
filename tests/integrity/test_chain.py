"""The hash chain: every changed, missing, added or reordered entry is found (invariant 3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockd.errors import VerifyError
from dockd.integrity.chain import (
    GENESIS,
    LogEntry,
    StoredEntry,
    check_chain,
    entry_hash,
    next_entry,
)

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def build(n: int) -> list[StoredEntry]:
    rows: list[StoredEntry] = []
    seq, prev = 0, GENESIS
    for i in range(n):
        entry = next_entry(
            seq, prev, T0 + timedelta(seconds=i), "test.event", {"i": i, "name": f"f{i}"}
        )
        raw = entry.to_bytes()
        rows.append(StoredEntry(entry.seq, raw, entry_hash(raw)))
        seq, prev = entry.seq, entry_hash(raw)
    return rows


def kinds(rows: list[StoredEntry]) -> set[str]:
    return {p.kind for p in check_chain(rows)}


def test_entry_format_is_stable() -> None:
    entry = next_entry(0, GENESIS, T0, "recording.ingested", {"sha256": "ab", "size": 3})
    assert entry.to_bytes() == (
        b'{"data":{"sha256":"ab","size":3},"kind":"recording.ingested",'
        b'"prev":"' + GENESIS.encode() + b'","seq":1,"time":"2026-11-25T00:00:00Z","v":1}'
    )
    assert LogEntry.from_bytes(entry.to_bytes()) == entry


@given(st.integers(0, 30))
def test_intact_chains_verify(n: int) -> None:
    assert check_chain(build(n)) == []


@given(st.integers(1, 12), st.data())
def test_any_flipped_bit_is_found(n: int, data: st.DataObject) -> None:
    rows = build(n)
    i = data.draw(st.integers(0, n - 1))
    raw = bytearray(rows[i].raw)
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= 1 << data.draw(st.integers(0, 7))
    rows[i] = StoredEntry(rows[i].seq, bytes(raw), rows[i].hash)
    problems = check_chain(rows)
    assert problems, "a flipped bit must be found"
    assert any(p.where == f"log entry {rows[i].seq}" for p in problems)


@given(st.integers(2, 12), st.data())
def test_flip_with_recomputed_hash_breaks_the_next_link(n: int, data: st.DataObject) -> None:
    """An attacker who also rewrites the stored hash is caught by the next entry's prev."""
    rows = build(n)
    i = data.draw(st.integers(0, n - 2))
    entry = LogEntry.from_bytes(rows[i].raw)
    forged = LogEntry(
        entry.seq, entry.time, entry.kind, {**entry.data, "name": "forged"}, entry.prev
    ).to_bytes()
    rows[i] = StoredEntry(rows[i].seq, forged, entry_hash(forged))
    assert "log_chain_broken" in kinds(rows)


@given(st.integers(2, 12), st.data())
def test_a_missing_entry_is_found(n: int, data: st.DataObject) -> None:
    """Any entry but the last; a cut-off tail leaves a valid shorter chain, which
    only something outside the chain can expose (the catalog rows that point at
    the entries, and signed checkpoints)."""
    rows = build(n)
    del rows[data.draw(st.integers(0, n - 2))]
    found = kinds(rows)
    assert found & {"log_entry_missing", "log_chain_broken"}


@given(st.integers(2, 12), st.data())
def test_reordered_entries_are_found(n: int, data: st.DataObject) -> None:
    rows = build(n)
    i = data.draw(st.integers(0, n - 2))
    rows[i], rows[i + 1] = rows[i + 1], rows[i]
    assert kinds(rows) & {"log_entry_reordered", "log_chain_broken"}


def test_an_added_entry_is_found() -> None:
    rows = build(4)
    fake = next_entry(1, entry_hash(rows[0].raw), T0, "test.event", {"i": 99})
    raw = fake.to_bytes()
    rows.insert(1, StoredEntry(2, raw, entry_hash(raw)))
    assert "log_chain_broken" in kinds(rows) or "log_entry_reordered" in kinds(rows)


@pytest.mark.parametrize(
    "raw",
    [
        b"{}",
        b'{"data":{},"kind":"k","prev":"00","seq":1,"time":"t","v":1}',
        b'{"data":{},"kind":"k","prev":"' + b"0" * 64 + b'","seq":0,"time":"t","v":1}',
        b'{"data":{},"kind":"k","prev":"' + b"0" * 64 + b'","seq":1,"time":"t","v":2}',
        b'{"data":[],"kind":"k","prev":"' + b"0" * 64 + b'","seq":1,"time":"t","v":1}',
        b'{"data":{},"extra":1,"kind":"k","prev":"' + b"0" * 64 + b'","seq":1,"time":"t","v":1}',
    ],
)
def test_malformed_entries_raise_one_error_type(raw: bytes) -> None:
    with pytest.raises(VerifyError):
        LogEntry.from_bytes(raw)
