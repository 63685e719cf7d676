"""The catalog's schema: tables, triggers and the forward migrations.

The log table is append-only: triggers refuse UPDATE and DELETE, and the
immutable columns of a recording refuse UPDATE. The schema has a version
(PRAGMA user_version) and forward migrations (`MIGRATIONS`); a catalog newer
than this code is refused, never downgraded (`Catalog._migrate`).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from dockd.integrity.merkle import build_nodes, leaf_hash


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


def _migrate_7(db: sqlite_utils.Database) -> None:
    """Access (R6): requests and their decisions, each use of a grant, confidential marks."""
    db.executescript(
        """
        CREATE TABLE access_requests (
            id             INTEGER PRIMARY KEY,
            kind           TEXT NOT NULL,      -- view | copy | export
            recordings     TEXT NOT NULL,      -- JSON ids, resolved when asked
            case_no        TEXT,
            reason         TEXT NOT NULL,
            for_party      TEXT,
            until          TEXT,               -- the end the requester asked for
            requested_by   TEXT NOT NULL,
            requested_uid  INTEGER NOT NULL,
            requested_at   TEXT NOT NULL,
            log_seq        INTEGER NOT NULL REFERENCES log(seq),
            state          TEXT NOT NULL,      -- pending | approved | refused
            decided_by     TEXT,
            decided_uid    INTEGER,
            decided_at     TEXT,
            decision_note  TEXT,
            expires_at     TEXT,               -- an approval's end
            decision_log_seq INTEGER REFERENCES log(seq)
        );
        CREATE TRIGGER access_requests_no_delete BEFORE DELETE ON access_requests
        BEGIN SELECT RAISE(ABORT, 'requests are history'); END;
        CREATE TRIGGER access_requests_decided_once BEFORE UPDATE ON access_requests
        WHEN OLD.state != 'pending'
        BEGIN SELECT RAISE(ABORT, 'a request is decided once'); END;
        CREATE TABLE access_uses (
            id          INTEGER PRIMARY KEY,
            request_id  INTEGER NOT NULL REFERENCES access_requests(id),
            kind        TEXT NOT NULL,         -- viewed | copied
            recordings  TEXT NOT NULL,         -- JSON ids
            by          TEXT NOT NULL,
            at          TEXT NOT NULL,
            detail      TEXT NOT NULL,         -- JSON: package_sha256, out, ...
            log_seq     INTEGER NOT NULL REFERENCES log(seq)
        );
        CREATE INDEX access_uses_request ON access_uses(request_id);
        CREATE TRIGGER access_uses_no_update BEFORE UPDATE ON access_uses
        BEGIN SELECT RAISE(ABORT, 'uses are history'); END;
        CREATE TRIGGER access_uses_no_delete BEFORE DELETE ON access_uses
        BEGIN SELECT RAISE(ABORT, 'uses are history'); END;
        ALTER TABLE recordings ADD COLUMN confidential TEXT;
        """
    )


def _migrate_8(db: sqlite_utils.Database) -> None:
    """The replication queue (issue 16): one row per bucket key, pending to verified."""
    db.executescript(
        """
        CREATE TABLE replication (
            bucket       TEXT NOT NULL,
            key          TEXT NOT NULL,
            kind         TEXT NOT NULL,    -- object | log | checkpoint | key | session
            ref          TEXT NOT NULL,    -- sha256 | first-last | size | key id | session id
            state        TEXT NOT NULL,    -- pending | uploading | verified
            attempts     INTEGER NOT NULL DEFAULT 0,
            last_error   TEXT,
            next_try     REAL,             -- not before (seconds since the epoch)
            queued_at    TEXT NOT NULL,
            started_at   TEXT,
            upload_id    TEXT,
            verified_at  TEXT,
            version_id   TEXT,
            size         INTEGER,
            sha256       TEXT,
            retain_until TEXT,
            seconds      REAL,
            log_seq      INTEGER REFERENCES log(seq),
            PRIMARY KEY (bucket, key)
        );
        CREATE INDEX replication_state ON replication(bucket, state);
        CREATE INDEX replication_ref ON replication(kind, ref);
        CREATE INDEX replication_verified ON replication(bucket, verified_at);
        CREATE TRIGGER replication_no_delete BEFORE DELETE ON replication
        BEGIN SELECT RAISE(ABORT, 'the replication queue is history'); END;
        CREATE TRIGGER replication_verified_stays BEFORE UPDATE ON replication
        WHEN OLD.state = 'verified' AND (
            NEW.state != 'verified' OR NEW.version_id IS NOT OLD.version_id
            OR NEW.sha256 IS NOT OLD.sha256 OR NEW.retain_until < OLD.retain_until
            OR (OLD.log_seq IS NOT NULL AND NEW.log_seq IS NOT OLD.log_seq))
        BEGIN SELECT RAISE(ABORT, 'a verified upload stays verified; its lock only grows'); END;
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
    _migrate_7,
    _migrate_8,
)
SCHEMA_VERSION = len(MIGRATIONS)
