"""The catalog: recordings, sessions and the evidence log in one SQLite file.

SQLite runs with journal_mode=WAL and synchronous=FULL: with NORMAL a
commit can vanish at a power cut, after the camera's copy was deleted on
the strength of it (DESIGN §4a). The log table is append-only: triggers
refuse UPDATE and DELETE, and the immutable columns of a recording refuse
UPDATE. The schema has a version (PRAGMA user_version) and forward
migrations; a catalog newer than this code is refused, never downgraded.

Only `service.py` calls the writing methods, inside `transaction()`.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from dockd.devices.registry import Assignment
from dockd.errors import CatalogError
from dockd.integrity.chain import GENESIS, LogEntry, StoredEntry, entry_hash
from dockd.integrity.merkle import CompactRange, build_nodes, leaf_hash


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.executescript(
        """
        CREATE TABLE log (
            seq   INTEGER PRIMARY KEY,
            time  TEXT NOT NULL,
            kind  TEXT NOT NULL,
            entry BLOB NOT NULL,
            hash  TEXT NOT NULL
        );
        CREATE TRIGGER log_no_update BEFORE UPDATE ON log
        BEGIN SELECT RAISE(ABORT, 'the evidence log is append-only'); END;
        CREATE TRIGGER log_no_delete BEFORE DELETE ON log
        BEGIN SELECT RAISE(ABORT, 'the evidence log is append-only'); END;

        CREATE TABLE sessions (
            id             INTEGER PRIMARY KEY,
            device_serial  TEXT NOT NULL,
            profile        TEXT NOT NULL,
            source         TEXT NOT NULL,
            started_at     TEXT NOT NULL,
            ended_at       TEXT,
            state          TEXT NOT NULL,
            clock_offset_s INTEGER,
            summary        TEXT
        );

        CREATE TABLE recordings (
            id               INTEGER PRIMARY KEY,
            sha256           TEXT NOT NULL,
            size             INTEGER NOT NULL,
            source_path      BLOB NOT NULL,
            source_path_text TEXT NOT NULL,
            source_mtime_ns  INTEGER NOT NULL,
            store_path       TEXT NOT NULL,
            device_serial    TEXT NOT NULL,
            device_number    TEXT,
            profile          TEXT NOT NULL,
            officer          TEXT,
            sequence         INTEGER,
            recorded_start   TEXT NOT NULL,
            recorded_end     TEXT NOT NULL,
            time_source      TEXT NOT NULL,
            clock_offset_s   INTEGER,
            ingested_at      TEXT NOT NULL,
            deadline         TEXT NOT NULL,
            late             INTEGER NOT NULL,
            flags            TEXT NOT NULL,
            media            TEXT NOT NULL,
            session_id       INTEGER REFERENCES sessions(id),
            log_seq          INTEGER NOT NULL REFERENCES log(seq),
            UNIQUE (device_serial, source_path, sha256)
        );
        CREATE INDEX recordings_sha256 ON recordings(sha256);
        CREATE INDEX recordings_source ON recordings(device_serial, source_path);
        CREATE TRIGGER recordings_immutable
        BEFORE UPDATE OF sha256, size, source_path, store_path, device_serial, log_seq
        ON recordings
        BEGIN SELECT RAISE(ABORT, 'recorded evidence facts are immutable'); END;
        CREATE TRIGGER recordings_no_delete BEFORE DELETE ON recordings
        BEGIN SELECT RAISE(ABORT, 'recordings are removed only by the retention sweep'); END;
        """
    )


def _migrate_2(db: sqlite_utils.Database) -> None:
    """The Merkle tree over the log, checkpoints and signing keys."""
    db.executescript(
        """
        CREATE TABLE merkle_nodes (
            level INTEGER NOT NULL,
            idx   INTEGER NOT NULL,
            hash  BLOB NOT NULL,
            PRIMARY KEY (level, idx)
        ) WITHOUT ROWID;
        CREATE TRIGGER merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes
        BEGIN SELECT RAISE(ABORT, 'Merkle nodes are write-once'); END;
        CREATE TRIGGER merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes
        BEGIN SELECT RAISE(ABORT, 'Merkle nodes are write-once'); END;

        CREATE TABLE checkpoints (
            id         INTEGER PRIMARY KEY,
            size       INTEGER NOT NULL,
            root       BLOB NOT NULL,
            note       TEXT NOT NULL,
            key_id     TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
        BEGIN SELECT RAISE(ABORT, 'checkpoints are kept as signed'); END;
        CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
        BEGIN SELECT RAISE(ABORT, 'checkpoints are kept as signed'); END;

        CREATE TABLE signing_keys (
            key_id     TEXT PRIMARY KEY,
            vkey       TEXT NOT NULL,
            created_at TEXT NOT NULL,
            retired_at TEXT,
            log_seq    INTEGER NOT NULL
        );
        """
    )
    # Catalogs from schema 1 already hold entries: give them their leaves.
    nodes = build_nodes(
        leaf_hash(bytes(raw)) for (raw,) in db.execute("SELECT entry FROM log ORDER BY seq")
    )
    db.conn.executemany(
        "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)",
        [(lv, ix, h) for (lv, ix), h in nodes.items()],
    )


def _migrate_3(db: sqlite_utils.Database) -> None:
    """When each store object was last re-hashed by a fixity audit."""
    db.executescript(
        """
        CREATE TABLE fixity (
            sha256          TEXT PRIMARY KEY,
            last_checked_at TEXT NOT NULL,
            last_ok         INTEGER NOT NULL
        );
        """
    )


def _migrate_4(db: sqlite_utils.Database) -> None:
    """The device registry, assignments, dockings' slot and health, recordings' unit."""
    db.executescript(
        """
        CREATE TABLE devices (
            serial      TEXT PRIMARY KEY,
            vendor_id   TEXT,
            model_id    TEXT,
            vendor      TEXT,
            model       TEXT,
            profile     TEXT,
            first_seen  TEXT NOT NULL,
            last_docked TEXT,
            last_slot   TEXT
        );

        CREATE TABLE assignments (
            id            INTEGER PRIMARY KEY,
            serial        TEXT NOT NULL,
            officer       TEXT,
            unit          TEXT,
            device_number TEXT,
            valid_from    TEXT NOT NULL,
            valid_to      TEXT,
            created_at    TEXT NOT NULL,
            reason        TEXT,
            log_seq       INTEGER NOT NULL REFERENCES log(seq)
        );
        CREATE INDEX assignments_serial ON assignments(serial);
        CREATE TRIGGER assignments_no_update BEFORE UPDATE ON assignments
        BEGIN SELECT RAISE(ABORT, 'assignments are history: append a new one'); END;
        CREATE TRIGGER assignments_no_delete BEFORE DELETE ON assignments
        BEGIN SELECT RAISE(ABORT, 'assignments are history: append a new one'); END;

        ALTER TABLE sessions ADD COLUMN slot TEXT;
        ALTER TABLE sessions ADD COLUMN health TEXT;
        ALTER TABLE recordings ADD COLUMN unit TEXT;
        ALTER TABLE recordings ADD COLUMN name_officer TEXT;
        ALTER TABLE recordings ADD COLUMN name_device TEXT;
        UPDATE recordings SET name_officer = officer, name_device = device_number;
        -- No assignment existed before this schema: every recording was unassigned.
        UPDATE recordings SET flags = (
            SELECT json_group_array(value) FROM (
                SELECT value FROM json_each(recordings.flags)
                UNION SELECT 'unassigned_device' ORDER BY 1
            )
        );
        """
    )


# Index i holds the migration from schema version i to i + 1. Append only.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
)
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Recording:
    id: int
    sha256: str
    size: int
    source_path: bytes
    source_path_text: str
    source_mtime_ns: int
    store_path: str
    device_serial: str
    device_number: str | None
    profile: str
    officer: str | None
    sequence: int | None
    recorded_start: str
    recorded_end: str
    time_source: str
    clock_offset_s: int | None
    ingested_at: str
    deadline: str
    late: bool
    flags: tuple[str, ...]
    media: dict[str, Any]
    session_id: int | None
    log_seq: int
    unit: str | None = None
    # What the file name (or the session) said, before assignments were applied.
    name_officer: str | None = None
    name_device: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Recording:
        values = dict(row)
        values["late"] = bool(values["late"])
        values["flags"] = tuple(json.loads(values["flags"]))
        values["media"] = json.loads(values["media"])
        values["source_path"] = bytes(values["source_path"])
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data["source_path"] = self.source_path_text
        data["flags"] = list(self.flags)
        return data


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._edge: CompactRange | None = None
        self._mutex = threading.RLock()
        try:
            conn = sqlite3.connect(path, timeout=30.0, check_same_thread=False)
            self.db = sqlite_utils.Database(conn, execute_plugins=False)
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise CatalogError(f"{path}: cannot switch the catalog to WAL mode (got {mode})")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"{path}: cannot open the catalog: {exc}") from None

    def close(self) -> None:
        self.db.close()

    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.version
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"{self.path}: catalog schema version {version} is newer than this dockd "
                f"understands ({SCHEMA_VERSION}); upgrade dockd"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.db.atomic():
                MIGRATIONS[target - 1](self.db)
                self.db.execute(f"PRAGMA user_version={target}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # One connection serves the daemon's worker threads: a transaction
        # holds the mutex so that no other thread's statement joins it.
        with self._mutex, self.db.atomic():
            yield

    # -- the log --------------------------------------------------------------

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

    def log_rows(self) -> Iterator[StoredEntry]:
        for seq, raw, digest in self.db.execute("SELECT seq, entry, hash FROM log ORDER BY rowid"):
            # A tampered row may hold TEXT where a BLOB belongs; verify must still read it.
            yield StoredEntry(
                int(seq), raw.encode() if isinstance(raw, str) else bytes(raw), str(digest)
            )

    def log_entry(self, seq: int) -> bytes | None:
        row = self.db.execute("SELECT entry FROM log WHERE seq = ?", [seq]).fetchone()
        if row is None:
            return None
        return row[0].encode() if isinstance(row[0], str) else bytes(row[0])

    # -- sessions ---------------------------------------------------------------

    def insert_session(self, values: dict[str, Any]) -> int:
        return int(self.db.table("sessions").insert(values).last_pk or 0)

    def update_session(self, session_id: int, values: dict[str, Any]) -> None:
        self.db.table("sessions").update(session_id, values)

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.db["sessions"].rows_where(order_by="id"))

    def sessions_in_state(self, state: str) -> list[dict[str, Any]]:
        return list(self.db["sessions"].rows_where("state = ?", [state], order_by="id"))

    # -- recordings ---------------------------------------------------------------

    def insert_recording(self, values: dict[str, Any]) -> int:
        values = {
            **values,
            "flags": json.dumps(values["flags"]),
            "media": json.dumps(values["media"]),
        }
        return int(self.db.table("recordings").insert(values).last_pk or 0)

    def recording(self, recording_id: int) -> Recording | None:
        rows = list(self.db["recordings"].rows_where("id = ?", [recording_id]))
        return Recording.from_row(rows[0]) if rows else None

    def recordings(self) -> list[Recording]:
        return [Recording.from_row(r) for r in self.db["recordings"].rows_where(order_by="id")]

    def find_same_file(
        self, serial: str, source_path: bytes, size: int, mtime_ns: int
    ) -> Recording | None:
        """The newest recording of this device's file with this size and mtime."""
        rows = list(
            self.db["recordings"].rows_where(
                "device_serial = ? AND source_path = ? AND size = ? AND source_mtime_ns = ?",
                [serial, source_path, size, mtime_ns],
                order_by="id desc",
                limit=1,
            )
        )
        return Recording.from_row(rows[0]) if rows else None

    def find_exact(self, serial: str, source_path: bytes, sha256: str) -> Recording | None:
        rows = list(
            self.db["recordings"].rows_where(
                "device_serial = ? AND source_path = ? AND sha256 = ?",
                [serial, source_path, sha256],
            )
        )
        return Recording.from_row(rows[0]) if rows else None

    def update_attribution(self, recording_id: int, values: dict[str, Any]) -> None:
        """Officer/unit/device number/flags after an assignment change (never the facts)."""
        if "flags" in values:
            values = {**values, "flags": json.dumps(values["flags"])}
        self.db.table("recordings").update(recording_id, values)

    def recordings_of_device(self, serial: str) -> list[Recording]:
        return [
            Recording.from_row(r)
            for r in self.db["recordings"].rows_where("device_serial = ?", [serial], order_by="id")
        ]

    # -- devices and assignments ------------------------------------------------

    def device(self, serial: str) -> dict[str, Any] | None:
        rows = list(self.db["devices"].rows_where("serial = ?", [serial]))
        return rows[0] if rows else None

    def devices(self) -> list[dict[str, Any]]:
        return list(self.db["devices"].rows_where(order_by="serial"))

    def upsert_device(self, values: dict[str, Any]) -> None:
        if self.device(values["serial"]) is None:
            self.db.table("devices").insert(values)
        else:
            self.db.table("devices").update(values["serial"], values)

    def insert_assignment(self, values: dict[str, Any]) -> int:
        return int(self.db.table("assignments").insert(values).last_pk or 0)

    def assignments(self, serial: str | None = None) -> list[Assignment]:
        where, args = ("serial = ?", [serial]) if serial is not None else (None, [])
        return [
            Assignment.from_row(r)
            for r in self.db["assignments"].rows_where(where, args, order_by="id")
        ]

    def audit_queue(self, limit: int) -> list[tuple[str, str | None]]:
        """Store objects, never-checked first, then the longest unchecked: (sha256, last check)."""
        rows = self.db.execute(
            "SELECT r.sha256, f.last_checked_at FROM (SELECT DISTINCT sha256 FROM recordings) r "
            "LEFT JOIN fixity f ON f.sha256 = r.sha256 "
            "ORDER BY f.last_checked_at IS NOT NULL, f.last_checked_at, r.sha256 LIMIT ?",
            [limit],
        )
        return [(str(sha), None if when is None else str(when)) for sha, when in rows]

    def record_fixity(self, sha256: str, when: str, ok: bool) -> None:
        self.db.table("fixity").upsert(
            {"sha256": sha256, "last_checked_at": when, "last_ok": ok}, pk="sha256"
        )

    def referenced_objects(self) -> set[str]:
        return {str(r[0]) for r in self.db.execute("SELECT DISTINCT sha256 FROM recordings")}


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return method(self, *args, **kwargs)

    return locked


# Every public method runs under the catalog's mutex (see `transaction`).
for _name, _method in list(vars(Catalog).items()):
    if callable(_method) and not _name.startswith("_") and _name != "transaction":
        setattr(Catalog, _name, _serialised(_method))
