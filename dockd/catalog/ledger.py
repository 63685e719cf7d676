"""The evidence log, its Merkle tree, checkpoints and signing keys."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from dockd.catalog.base import Tables
from dockd.errors import CatalogError
from dockd.integrity.chain import GENESIS, LogEntry, StoredEntry, entry_hash
from dockd.integrity.merkle import CompactRange, leaf_hash


class LedgerTables(Tables):
    """log, merkle_nodes, checkpoints, signing_keys (append-only, write-once)."""

    # The tree's right edge, kept in memory so that an append reads no node.
    _edge: CompactRange | None = None

    def head(self) -> tuple[int, str]:
        row = self.db.execute("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def append(self, entry: LogEntry) -> None:
        """Append an entry built on `head()` and its Merkle leaf; call inside `transaction()`.

        Leaf number seq - 1; the nodes it completes are stored with it, so
        roots and proofs never re-hash the entries (O(log n) per append).
        """
        raw = entry.to_bytes()
        self.db.execute(
            "INSERT INTO log (seq, time, kind, entry, hash) VALUES (?, ?, ?, ?, ?)",
            [entry.seq, entry.time, entry.kind, raw, entry_hash(raw)],
        )
        # The tree's right edge is kept in memory, so an append reads no node.
        # After a rolled-back transaction it is ahead of the table: rebuild it.
        if self._edge is None or self._edge.size != entry.seq - 1:
            self._edge = CompactRange(entry.seq - 1, self.node)
        edge = self._edge
        self._edge = None  # until the insert below has succeeded
        try:
            self.db.conn.executemany(
                "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
                edge.append(leaf_hash(raw)),
            )
        except sqlite3.IntegrityError:
            raise CatalogError(
                f"{self.path}: the Merkle tree already holds nodes past the log's end "
                "(the catalog was altered); nothing was written. Run `dockd verify`."
            ) from None
        self._edge = edge

    def node(self, level: int, idx: int) -> bytes:
        """The hash of a perfect subtree (merkle.NodeReader)."""
        row = self.db.execute(
            "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?", [level, idx]
        ).fetchone()
        if row is None:
            raise CatalogError(f"Merkle node ({level}, {idx}) is missing from the catalog")
        return bytes(row[0])

    def stored_nodes(self) -> dict[tuple[int, int], bytes]:
        return {
            (int(lv), int(ix)): bytes(h)
            for lv, ix, h in self.db.execute("SELECT level, idx, hash FROM merkle_nodes")
        }

    # -- checkpoints and keys ----------------------------------------------------

    def insert_checkpoint(self, values: dict[str, Any]) -> None:
        self.db.table("checkpoints").insert(values)

    def last_checkpoint(self) -> dict[str, Any] | None:
        rows = list(self.db["checkpoints"].rows_where(order_by="id desc", limit=1))
        return rows[0] if rows else None

    def checkpoints(self) -> list[dict[str, Any]]:
        return list(self.db["checkpoints"].rows_where(order_by="id"))

    def insert_key(self, values: dict[str, Any]) -> None:
        self.db.table("signing_keys").insert(values)

    def retire_key(self, key_id: str, when: str) -> None:
        self.db.table("signing_keys").update(key_id, {"retired_at": when})

    def signing_keys(self) -> list[dict[str, Any]]:
        return list(self.db["signing_keys"].rows_where(order_by="created_at"))

    # -- reading the log -----------------------------------------------------------

    def log_rows(self) -> Iterator[StoredEntry]:
        for seq, raw, digest in self.db.execute("SELECT seq, entry, hash FROM log ORDER BY rowid"):
            # A tampered row may hold TEXT where a BLOB belongs; verify must still read it.
            yield StoredEntry(
                int(seq), raw.encode() if isinstance(raw, str) else bytes(raw), str(digest)
            )

    def entries_of_kinds(self, kinds: tuple[str, ...]) -> Iterator[tuple[int, str, bytes]]:
        """(seq, kind, entry) of every entry of these kinds, in log order."""
        marks = ",".join("?" * len(kinds))
        for seq, kind, raw in self.db.execute(
            f"SELECT seq, kind, entry FROM log WHERE kind IN ({marks}) ORDER BY seq", list(kinds)
        ):
            yield int(seq), str(kind), raw.encode() if isinstance(raw, str) else bytes(raw)

    def log_entry(self, seq: int) -> bytes | None:
        row = self.db.execute("SELECT entry FROM log WHERE seq = ?", [seq]).fetchone()
        if row is None:
            return None
        return row[0].encode() if isinstance(row[0], str) else bytes(row[0])

    def last_entry_of_kind(self, kind: str) -> bytes | None:
        """The newest entry of this kind (the log(kind) index), or None."""
        row = self.db.execute(
            "SELECT entry FROM log WHERE kind = ? ORDER BY seq DESC LIMIT 1", [kind]
        ).fetchone()
        if row is None:
            return None
        return row[0].encode() if isinstance(row[0], str) else bytes(row[0])
