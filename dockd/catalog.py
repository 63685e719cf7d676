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

import dataclasses
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
from dockd.labels import CaseLabels


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


def _migrate_5(db: sqlite_utils.Database) -> None:
    """Labels, cases, holds, gap explanations and retention (docs/FORMAT.md, schema 5).

    Rows of older catalogs get their tier from the first writer that opens
    them (Service.apply_retention_policy), with a logged `retention.updated`.
    """
    db.executescript(
        """
        ALTER TABLE recordings ADD COLUMN cause TEXT;
        ALTER TABLE recordings ADD COLUMN parties TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE recordings ADD COLUMN categories TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE recordings ADD COLUMN notes TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE recordings ADD COLUMN tier TEXT;
        ALTER TABLE recordings ADD COLUMN expires_at TEXT;
        ALTER TABLE recordings ADD COLUMN keep_until TEXT;
        ALTER TABLE recordings ADD COLUMN retention_state TEXT NOT NULL DEFAULT 'live';
        ALTER TABLE recordings ADD COLUMN pending_since TEXT;
        ALTER TABLE recordings ADD COLUMN deleted_at TEXT;
        CREATE INDEX recordings_expiry ON recordings(retention_state, expires_at);
        CREATE INDEX recordings_device_time ON recordings(device_serial, recorded_start);
        CREATE TRIGGER recordings_tombstone_final BEFORE UPDATE OF retention_state ON recordings
        WHEN OLD.retention_state = 'deleted'
        BEGIN SELECT RAISE(ABORT, 'a deleted recording stays a tombstone'); END;

        CREATE TABLE cases (
            no         TEXT PRIMARY KEY,
            cause      TEXT NOT NULL,
            parties    TEXT NOT NULL,
            categories TEXT NOT NULL,
            state      TEXT NOT NULL,
            created_at TEXT NOT NULL,
            closed_at  TEXT,
            log_seq    INTEGER NOT NULL REFERENCES log(seq)
        );
        CREATE TRIGGER cases_no_delete BEFORE DELETE ON cases
        BEGIN SELECT RAISE(ABORT, 'cases are closed, never deleted'); END;

        CREATE TABLE case_links (
            case_no      TEXT NOT NULL REFERENCES cases(no),
            recording_id INTEGER NOT NULL REFERENCES recordings(id),
            linked_at    TEXT NOT NULL,
            log_seq      INTEGER NOT NULL REFERENCES log(seq),
            PRIMARY KEY (case_no, recording_id)
        );
        CREATE INDEX case_links_recording ON case_links(recording_id);

        CREATE TABLE holds (
            id              INTEGER PRIMARY KEY,
            case_no         TEXT REFERENCES cases(no),
            reason          TEXT NOT NULL,
            set_at          TEXT NOT NULL,
            set_by          TEXT,
            log_seq         INTEGER NOT NULL REFERENCES log(seq),
            released_at     TEXT,
            released_by     TEXT,
            release_reason  TEXT,
            release_log_seq INTEGER REFERENCES log(seq)
        );
        CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
        BEGIN SELECT RAISE(ABORT, 'holds are released, never deleted'); END;
        CREATE TRIGGER holds_release_once BEFORE UPDATE ON holds
        WHEN OLD.released_at IS NOT NULL
        BEGIN SELECT RAISE(ABORT, 'a released hold stays released'); END;
        CREATE TABLE hold_items (
            hold_id      INTEGER NOT NULL REFERENCES holds(id),
            recording_id INTEGER NOT NULL REFERENCES recordings(id),
            PRIMARY KEY (hold_id, recording_id)
        );
        CREATE INDEX hold_items_recording ON hold_items(recording_id);
        CREATE TRIGGER hold_items_no_delete BEFORE DELETE ON hold_items
        BEGIN SELECT RAISE(ABORT, 'holds are released, never deleted'); END;

        CREATE TABLE gap_explanations (
            id            INTEGER PRIMARY KEY,
            gap           TEXT NOT NULL,
            device_serial TEXT NOT NULL,
            text          TEXT NOT NULL,
            by            TEXT,
            at            TEXT NOT NULL,
            log_seq       INTEGER NOT NULL REFERENCES log(seq)
        );
        CREATE INDEX gap_explanations_gap ON gap_explanations(gap);
        CREATE TRIGGER gap_explanations_no_update BEFORE UPDATE ON gap_explanations
        BEGIN SELECT RAISE(ABORT, 'explanations are history: add another'); END;
        CREATE TRIGGER gap_explanations_no_delete BEFORE DELETE ON gap_explanations
        BEGIN SELECT RAISE(ABORT, 'explanations are history: add another'); END;
        """
    )


def _migrate_6(db: sqlite_utils.Database) -> None:
    """Archival disc exports: which disc (label, image hash) holds which recording."""
    db.executescript(
        """
        CREATE TABLE exports (
            id          INTEGER PRIMARY KEY,
            created_at  TEXT NOT NULL,
            medium      TEXT NOT NULL,
            capacity    INTEGER NOT NULL,
            copies      INTEGER NOT NULL,
            selection   TEXT NOT NULL,
            approved_by TEXT NOT NULL,
            reason      TEXT NOT NULL,
            by          TEXT,
            log_seq     INTEGER NOT NULL REFERENCES log(seq)
        );
        CREATE TRIGGER exports_no_delete BEFORE DELETE ON exports
        BEGIN SELECT RAISE(ABORT, 'exports are history'); END;
        CREATE TABLE discs (
            label         TEXT PRIMARY KEY,
            export_id     INTEGER NOT NULL REFERENCES exports(id),
            number        INTEGER NOT NULL,
            copy          INTEGER NOT NULL,
            image_sha256  TEXT,
            image_size    INTEGER,
            built_at      TEXT,
            build_log_seq INTEGER REFERENCES log(seq),
            burned_at     TEXT,
            drive         TEXT,
            burn_log_seq  INTEGER REFERENCES log(seq)
        );
        CREATE TRIGGER discs_no_delete BEFORE DELETE ON discs
        BEGIN SELECT RAISE(ABORT, 'discs are history'); END;
        CREATE TABLE disc_items (
            label        TEXT NOT NULL REFERENCES discs(label),
            recording_id INTEGER NOT NULL REFERENCES recordings(id),
            bag_path     TEXT,
            PRIMARY KEY (label, recording_id)
        );
        CREATE INDEX disc_items_recording ON disc_items(recording_id);
        -- The last entry of a kind (retention.policy at every start) without a scan.
        CREATE INDEX log_kind ON log(kind, seq);
        CREATE TRIGGER disc_items_no_delete BEFORE DELETE ON disc_items
        BEGIN SELECT RAISE(ABORT, 'discs are history'); END;
        """
    )


# Index i holds the migration from schema version i to i + 1. Append only.
MIGRATIONS: tuple[Callable[[sqlite_utils.Database], None], ...] = (
    _migrate_1,
    _migrate_2,
    _migrate_3,
    _migrate_4,
    _migrate_5,
    _migrate_6,
)
SCHEMA_VERSION = len(MIGRATIONS)
RETENTION_COLUMNS = frozenset(
    {"tier", "expires_at", "keep_until", "retention_state", "pending_since", "deleted_at"}
)


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
    # Labels (schema 5): the recording's own; a linked case adds its own.
    cause: str | None = None
    parties: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    notes: tuple[dict[str, Any], ...] = ()
    # Retention (schema 5): docs/FORMAT.md "Retention".
    tier: str | None = None
    expires_at: str | None = None
    keep_until: str | None = None
    retention_state: str = "live"
    pending_since: str | None = None
    deleted_at: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Recording:
        values = dict(row)
        values["late"] = bool(values["late"])
        values["flags"] = tuple(json.loads(values["flags"]))
        values["media"] = json.loads(values["media"])
        values["source_path"] = bytes(values["source_path"])
        for name in ("parties", "categories", "notes"):
            values[name] = tuple(json.loads(values.get(name) or "[]"))
        return cls(**values)

    @property
    def deleted(self) -> bool:
        return self.retention_state == "deleted"

    def as_json(self) -> dict[str, Any]:
        data = {f: getattr(self, f) for f in self.__dataclass_fields__}
        data["source_path"] = self.source_path_text
        for name in ("flags", "parties", "categories", "notes"):
            data[name] = list(data[name])
        if self.deleted:
            data["store_path"] = None  # a tombstone: the hash stays, the file is gone
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
        """Store objects, never-checked first, then the longest unchecked: (sha256, last check).

        Only objects that a recording not deleted by retention refers to: a
        tombstone's object is gone on purpose (an audit must not call it damaged).
        """
        rows = self.db.execute(
            "SELECT r.sha256, f.last_checked_at FROM (SELECT DISTINCT sha256 FROM recordings "
            "WHERE retention_state != 'deleted') r "
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
        """The objects the store must hold: those of recordings not deleted by retention."""
        return {
            str(r[0])
            for r in self.db.execute(
                "SELECT DISTINCT sha256 FROM recordings WHERE retention_state != 'deleted'"
            )
        }

    # -- labels, cases, holds (schema 5) -------------------------------------------

    def update_labels(self, recording_id: int, values: dict[str, Any]) -> None:
        """cause / parties / categories / notes (lists as JSON); never the facts."""
        encoded = {
            k: json.dumps(list(v), ensure_ascii=False) if isinstance(v, list | tuple) else v
            for k, v in values.items()
        }
        self.db.table("recordings").update(recording_id, encoded)

    def update_retention(self, recording_id: int, values: dict[str, Any]) -> None:
        """tier / expires_at / keep_until / retention_state / pending_since / deleted_at."""
        self.update_retention_many([(recording_id, values)])

    def update_retention_many(self, changes: list[tuple[int, dict[str, Any]]]) -> None:
        """Many rows' retention columns: one prepared UPDATE per set of columns.

        (sqlite-utils' table.update re-reads the schema and selects the row
        first: ~400 µs a row against ~20 µs here, which is most of a sweep.)
        """
        groups: dict[tuple[str, ...], list[list[Any]]] = {}
        for recording_id, values in changes:
            unknown = set(values) - RETENTION_COLUMNS
            if unknown:
                raise CatalogError(f"not retention columns: {sorted(unknown)}")
            columns = tuple(sorted(values))
            groups.setdefault(columns, []).append([values[c] for c in columns] + [recording_id])
        for columns, rows in groups.items():
            assignments = ", ".join(f"{c} = ?" for c in columns)
            self.db.conn.executemany(f"UPDATE recordings SET {assignments} WHERE id = ?", rows)

    def recordings_by_id(self, ids: list[int]) -> list[Recording]:
        found: list[Recording] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found += [
                Recording.from_row(r)
                for r in self.db["recordings"].rows_where(f"id IN ({marks})", chunk, order_by="id")
            ]
        return found

    def insert_case(self, values: dict[str, Any]) -> None:
        self.db.table("cases").insert(_json_lists(values, "parties", "categories"))

    def case(self, no: str) -> dict[str, Any] | None:
        rows = list(self.db["cases"].rows_where("no = ?", [no]))
        return _decoded(rows[0], "parties", "categories") if rows else None

    def cases(self) -> list[dict[str, Any]]:
        return [
            _decoded(r, "parties", "categories")
            for r in self.db["cases"].rows_where(order_by="created_at, no")
        ]

    def update_case(self, no: str, values: dict[str, Any]) -> None:
        self.db.table("cases").update(no, values)

    def link(self, case_no: str, recording_ids: list[int], at: str, log_seq: int) -> None:
        self.db.table("case_links").insert_all(
            {"case_no": case_no, "recording_id": i, "linked_at": at, "log_seq": log_seq}
            for i in recording_ids
        )

    def unlink(self, case_no: str, recording_ids: list[int]) -> None:
        self.db.conn.executemany(
            "DELETE FROM case_links WHERE case_no = ? AND recording_id = ?",
            [(case_no, i) for i in recording_ids],
        )

    def case_links(self, case_no: str | None = None) -> list[dict[str, Any]]:
        where, args = ("case_no = ?", [case_no]) if case_no is not None else (None, [])
        return list(self.db["case_links"].rows_where(where, args, order_by="case_no, recording_id"))

    def case_labels_of(self, recording_ids: list[int]) -> dict[int, list[CaseLabels]]:
        """recording id -> the labels of every case it is linked to (by case number)."""
        found: dict[int, list[CaseLabels]] = {i: [] for i in recording_ids}
        for start in range(0, len(recording_ids), 500):
            chunk = recording_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                "SELECT l.recording_id, c.no, c.cause, c.parties, c.categories "
                "FROM case_links l JOIN cases c ON c.no = l.case_no "
                f"WHERE l.recording_id IN ({marks}) ORDER BY l.recording_id, c.no",
                chunk,
            ):
                found[int(row[0])].append(
                    CaseLabels(
                        str(row[1]),
                        str(row[2]),
                        tuple(json.loads(row[3])),
                        tuple(json.loads(row[4])),
                    )
                )
        return found

    def cases_of(self, recording_id: int) -> list[str]:
        return [
            str(r[0])
            for r in self.db.execute(
                "SELECT case_no FROM case_links WHERE recording_id = ? ORDER BY case_no",
                [recording_id],
            )
        ]

    def insert_hold(self, values: dict[str, Any], recording_ids: list[int]) -> None:
        self.db.table("holds").insert(values)
        self.db.table("hold_items").insert_all(
            {"hold_id": values["id"], "recording_id": i} for i in recording_ids
        )

    def hold(self, hold_id: int) -> dict[str, Any] | None:
        rows = list(self.db["holds"].rows_where("id = ?", [hold_id]))
        return rows[0] if rows else None

    def holds(self) -> list[dict[str, Any]]:
        return list(self.db["holds"].rows_where(order_by="id"))

    def hold_items(self, hold_id: int | None = None) -> list[dict[str, Any]]:
        where, args = ("hold_id = ?", [hold_id]) if hold_id is not None else (None, [])
        return list(self.db["hold_items"].rows_where(where, args, order_by="hold_id, recording_id"))

    def release_hold(self, hold_id: int, values: dict[str, Any]) -> None:
        self.db.table("holds").update(hold_id, values)

    def held_ids(self, hold_id: int) -> list[int]:
        """Recordings a hold covers now: its own items, or every recording of its case."""
        rows = self.db.execute(
            "SELECT recording_id FROM hold_items WHERE hold_id = ? "
            "UNION SELECT l.recording_id FROM holds h JOIN case_links l ON l.case_no = h.case_no "
            "WHERE h.id = ? ORDER BY 1",
            [hold_id, hold_id],
        )
        return [int(r[0]) for r in rows]

    def insert_gap_explanation(self, values: dict[str, Any]) -> int:
        return int(self.db.table("gap_explanations").insert(values).last_pk or 0)

    def gap_explanations(self) -> list[dict[str, Any]]:
        return list(self.db["gap_explanations"].rows_where(order_by="id"))

    def retention_facts(self, ids: list[int] | None = None) -> Iterator[dict[str, Any]]:
        """Per recording not yet deleted: what the retention policy needs, and what is stored.

        `case_categories` is a JSON array of the linked cases' category arrays;
        `open_case` and `held` are 0/1. Every recording when `ids` is None.
        """
        select = """
            SELECT r.id, r.recorded_end, r.categories, r.keep_until, r.tier, r.expires_at,
                   r.retention_state, r.pending_since,
                   (SELECT json_group_array(c.categories) FROM case_links l
                      JOIN cases c ON c.no = l.case_no WHERE l.recording_id = r.id)
                     AS case_categories,
                   EXISTS (SELECT 1 FROM case_links l JOIN cases c ON c.no = l.case_no
                           WHERE l.recording_id = r.id AND c.state = 'open') AS open_case,
                   (EXISTS (SELECT 1 FROM hold_items i JOIN holds h ON h.id = i.hold_id
                            WHERE i.recording_id = r.id AND h.released_at IS NULL)
                    OR EXISTS (SELECT 1 FROM case_links l JOIN holds h ON h.case_no = l.case_no
                               WHERE l.recording_id = r.id AND h.released_at IS NULL)) AS held
            FROM recordings r WHERE r.retention_state != 'deleted'
        """
        columns = (
            "id", "recorded_end", "categories", "keep_until", "tier", "expires_at",
            "retention_state", "pending_since", "case_categories", "open_case", "held",
        )  # fmt: skip
        if ids is None:
            for row in self.db.execute(select + " ORDER BY r.id"):
                yield dict(zip(columns, row, strict=True))
            return
        unique = sorted(set(ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"{select} AND r.id IN ({marks}) ORDER BY r.id", chunk):
                yield dict(zip(columns, row, strict=True))

    def expired_candidates(self, as_of: str) -> list[dict[str, Any]]:
        """Live or pending recordings whose stored expiry is at or before `as_of`."""
        rows = self.db.execute(
            "SELECT id, sha256, tier, expires_at, retention_state, pending_since "
            "FROM recordings WHERE retention_state IN ('live', 'pending_deletion') "
            "AND expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at, id",
            [as_of],
        )
        columns = ("id", "sha256", "tier", "expires_at", "retention_state", "pending_since")
        return [dict(zip(columns, r, strict=True)) for r in rows]

    def protected_ids(self) -> dict[int, tuple[str, ...]]:
        """Recordings that may not be deleted now: id -> ("hold", "open_case")."""
        held = self.db.execute(
            "SELECT i.recording_id FROM hold_items i JOIN holds h ON h.id = i.hold_id "
            "WHERE h.released_at IS NULL UNION "
            "SELECT l.recording_id FROM case_links l JOIN holds h ON h.case_no = l.case_no "
            "WHERE h.released_at IS NULL"
        )
        open_case = self.db.execute(
            "SELECT l.recording_id FROM case_links l JOIN cases c ON c.no = l.case_no "
            "WHERE c.state = 'open'"
        )
        result: dict[int, tuple[str, ...]] = {}
        for (rid,) in held:
            result[int(rid)] = ("hold",)
        for (rid,) in open_case:
            result[int(rid)] = (*result.get(int(rid), ()), "open_case")
        return result

    def live_references(self, shas: list[str]) -> dict[str, int]:
        """sha256 -> how many recordings not yet deleted refer to the object."""
        counts: dict[str, int] = {}
        unique = sorted(set(shas))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for sha, n in self.db.execute(
                f"SELECT sha256, COUNT(*) FROM recordings WHERE sha256 IN ({marks}) "
                "AND retention_state != 'deleted' GROUP BY sha256",
                chunk,
            ):
                counts[str(sha)] = int(n)
        return counts

    def tombstoned_objects(self) -> set[str]:
        """Objects that only deleted recordings refer to (their bytes should be gone)."""
        return {
            str(r[0])
            for r in self.db.execute(
                "SELECT sha256 FROM recordings GROUP BY sha256 "
                "HAVING SUM(retention_state != 'deleted') = 0"
            )
        }

    def clips(self, serial: str | None = None) -> list[tuple[Any, ...]]:
        """(id, device_serial, session_id, sequence, recorded_start, recorded_end) rows."""
        where, args = ("WHERE device_serial = ?", [serial]) if serial else ("", [])
        return list(
            self.db.execute(
                "SELECT id, device_serial, session_id, sequence, recorded_start, recorded_end "
                f"FROM recordings {where} ORDER BY device_serial, recorded_start, id",
                args,
            )
        )

    def compliance_rows(self, start: str | None, end: str | None) -> Iterator[dict[str, Any]]:
        """Per recording (recorded in [start, end)): what the compliance report counts.

        Streamed from the cursor (a report over a million recordings must
        not hold them all); consume it while the catalog is open.
        """
        clauses, args = [], []
        if start:
            clauses.append("julianday(r.recorded_start) >= julianday(?)")
            args.append(start)
        if end:
            clauses.append("julianday(r.recorded_start) < julianday(?)")
            args.append(end)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        columns = (
            "id", "device_serial", "device_number", "officer", "unit", "session_id", "sequence",
            "recorded_start", "recorded_end", "ingested_at", "late", "flags", "cause",
            "cases", "retention_state",
        )  # fmt: skip
        rows = self.db.execute(
            "SELECT r.id, r.device_serial, r.device_number, r.officer, r.unit, r.session_id, "
            "r.sequence, r.recorded_start, r.recorded_end, r.ingested_at, r.late, r.flags, "
            "r.cause, (SELECT COUNT(*) FROM case_links l WHERE l.recording_id = r.id), "
            f"r.retention_state FROM recordings r {where} ORDER BY r.id",
            args,
        )
        for row in rows:
            yield dict(zip(columns, row, strict=True))

    def search(self, f: RecordingFilter) -> list[Recording]:
        """Recordings matching every given filter (seed 004 Art. 11: by agency, device,
        officer, time, parties, cause), a case's labels counting as the recording's own."""
        clauses: list[str] = []
        args: list[Any] = []
        case_of = (
            "SELECT c.{col} FROM case_links l JOIN cases c ON c.no = l.case_no "
            "WHERE l.recording_id = r.id"
        )
        if f.unit:
            clauses.append("r.unit = ?")
            args.append(f.unit)
        if f.officer:
            clauses.append("(r.officer = ? OR r.name_officer = ?)")
            args += [f.officer, f.officer]
        if f.device:
            clauses.append("(r.device_serial = ? OR r.device_number = ?)")
            args += [f.device, f.device]
        if f.start:
            clauses.append("julianday(r.recorded_start) >= julianday(?)")
            args.append(f.start)
        if f.end:
            clauses.append("julianday(r.recorded_start) < julianday(?)")
            args.append(f.end)
        if f.cause:
            clauses.append(
                f"(instr(r.cause, ?) > 0 OR EXISTS ({case_of.format(col='no')} "
                "AND instr(c.cause, ?) > 0))"
            )
            args += [f.cause, f.cause]
        for party in f.parties:
            clauses.append(
                "(EXISTS (SELECT 1 FROM json_each(r.parties) WHERE value = ?) OR EXISTS ("
                f"{case_of.format(col='no')} AND EXISTS (SELECT 1 FROM json_each(c.parties) "
                "WHERE value = ?)))"
            )
            args += [party, party]
        for category in f.categories:
            clauses.append(
                "(EXISTS (SELECT 1 FROM json_each(r.categories) WHERE value = ?) OR EXISTS ("
                f"{case_of.format(col='no')} AND EXISTS (SELECT 1 FROM json_each(c.categories) "
                "WHERE value = ?)))"
            )
            args += [category, category]
        if f.case:
            clauses.append(
                "EXISTS (SELECT 1 FROM case_links l WHERE l.recording_id = r.id AND l.case_no = ?)"
            )
            args.append(f.case)
        if f.tier:
            clauses.append("r.tier = ?")
            args.append(f.tier)
        for flag in f.flags:
            clauses.append("EXISTS (SELECT 1 FROM json_each(r.flags) WHERE value = ?)")
            args.append(flag)
        if f.state:
            clauses.append("r.retention_state = ?")
            args.append(f.state)
        if f.unlabelled:
            clauses.append(
                "r.cause IS NULL AND NOT EXISTS (SELECT 1 FROM case_links l "
                "WHERE l.recording_id = r.id)"
            )
        where = " AND ".join(clauses) or "1"
        limit = f" LIMIT {int(f.limit)}" if f.limit else ""
        columns = [d[1] for d in self.db.execute("PRAGMA table_info(recordings)")]
        rows = self.db.execute(
            f"SELECT r.* FROM recordings r WHERE {where} ORDER BY r.recorded_start, r.id{limit}",
            args,
        )
        return [Recording.from_row(dict(zip(columns, row, strict=True))) for row in rows]


@dataclass(frozen=True)
class RecordingFilter:
    """`dockd list` filters; empty ones match everything. Times are UTC ISO strings."""

    unit: str | None = None
    officer: str | None = None
    device: str | None = None
    start: str | None = None
    end: str | None = None
    cause: str | None = None
    parties: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    case: str | None = None
    tier: str | None = None
    flags: tuple[str, ...] = ()
    state: str | None = None
    unlabelled: bool = False
    limit: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
            if v not in (None, (), False)
        }


def _json_lists(values: dict[str, Any], *names: str) -> dict[str, Any]:
    return {
        k: json.dumps(list(v), ensure_ascii=False) if k in names else v for k, v in values.items()
    }


def _decoded(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: json.loads(v) if k in names else v for k, v in row.items()}


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
