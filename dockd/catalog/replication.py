"""The replication queue (schema 8): one row per bucket key, pending → uploading → verified.

Rows are keyed by (bucket, key), so that a content key is uploaded once
however many recordings share it, and a changed bucket starts its own
queue. What the states mean and the order of writes: docs/FORMAT.md
"Schema 8".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from dockd.catalog.base import Tables

# Small and structural first: keys, then the log and its checkpoints (in the
# order they were queued, so that a segment goes up before the checkpoint
# that covers it), then session extracts, then the evidence itself.
_ORDER = "CASE kind WHEN 'key' THEN 0 WHEN 'log' THEN 1 WHEN 'checkpoint' THEN 1 "
_ORDER += "WHEN 'session' THEN 2 ELSE 3 END, rowid"
# Which kinds get a `replicate.verified` entry (the others are the log itself).
LOGGED_KINDS = ("object", "session")


class ReplicationTables(Tables):
    """replication: the queue of what goes to the bucket, and what the bucket holds."""

    def insert_upload(
        self, bucket: str, key: str, kind: str, ref: str, now: str, size: int | None = None
    ) -> bool:
        """Queue `key` unless it is queued already; True if it was new."""
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO replication (bucket, key, kind, ref, state, queued_at, size) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            [bucket, key, kind, ref, now, size],
        )
        return bool(cursor.rowcount)

    # Rows of one dock's prefix in a bucket (a changed replicate.prefix starts afresh).
    _UNDER = "q.bucket = ? AND substr(q.key, 1, length(?)) = ?"

    def unqueued_objects(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        """(sha256, size) of the store objects of live recordings not queued under
        `prefix` of `bucket`."""
        return [
            (str(sha), int(size))
            for sha, size in self.db.execute(
                "SELECT sha256, MAX(size) FROM recordings r "
                "WHERE retention_state != 'deleted' AND NOT EXISTS (SELECT 1 FROM replication q "
                f"  WHERE {self._UNDER} AND q.kind = 'object' AND q.ref = r.sha256) "
                "GROUP BY sha256 ORDER BY MIN(id)",
                [bucket, prefix + "/", prefix + "/"],
            ).fetchall()
        ]

    def queued_refs(self, bucket: str, prefix: str, kind: str) -> set[str]:
        return {
            str(ref)
            for (ref,) in self.db.execute(
                f"SELECT ref FROM replication q WHERE {self._UNDER} AND kind = ?",
                [bucket, prefix + "/", prefix + "/", kind],
            ).fetchall()
        }

    def last_segment_end(self, bucket: str, prefix: str) -> int:
        """The last log entry a queued log segment under `prefix` holds (0: none)."""
        row = self.db.execute(
            "SELECT MAX(CAST(substr(ref, instr(ref, '-') + 1) AS INTEGER)) FROM replication q "
            f"WHERE {self._UNDER} AND kind = 'log'",
            [bucket, prefix + "/", prefix + "/"],
        ).fetchone()
        return int(row[0] or 0)

    def due_uploads(self, bucket: str, now_s: float, limit: int) -> list[dict[str, Any]]:
        """Pending rows whose back-off has passed, in upload order."""
        return [
            dict(r)
            for r in self.db.query(
                f"SELECT * FROM replication WHERE bucket = ? AND state = 'pending' "
                f"AND (next_try IS NULL OR next_try <= ?) ORDER BY {_ORDER} LIMIT ?",
                [bucket, now_s, limit],
            )
        ]

    def next_retry(self, bucket: str) -> float | None:
        """When the earliest pending row in back-off may be tried (None: none waits)."""
        row = self.db.execute(
            "SELECT MIN(next_try) FROM replication WHERE bucket = ? AND state = 'pending'",
            [bucket],
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def upload(self, bucket: str, key: str) -> dict[str, Any] | None:
        rows = list(self.db["replication"].rows_where("bucket = ? AND key = ?", [bucket, key]))
        return rows[0] if rows else None

    def update_upload(self, bucket: str, key: str, values: dict[str, Any]) -> None:
        sets = ", ".join(f"{name} = ?" for name in values)
        self.db.execute(
            f"UPDATE replication SET {sets} WHERE bucket = ? AND key = ?",
            [*values.values(), bucket, key],
        )

    def mark_uploading(self, bucket: str, key: str, now: str) -> bool:
        """pending → uploading (attempts + 1); False if another worker took it."""
        cursor = self.db.execute(
            "UPDATE replication SET state = 'uploading', attempts = attempts + 1, "
            "started_at = ?, upload_id = NULL WHERE bucket = ? AND key = ? AND state = 'pending'",
            [now, bucket, key],
        )
        return bool(cursor.rowcount)

    def interrupted_uploads(self, bucket: str) -> list[dict[str, Any]]:
        """Rows left `uploading` by a writer that stopped (a crash, a restart)."""
        return list(
            self.db["replication"].rows_where("bucket = ? AND state = 'uploading'", [bucket])
        )

    def unlogged_verified(self, bucket: str, limit: int) -> list[dict[str, Any]]:
        marks = ", ".join("?" * len(LOGGED_KINDS))
        return list(
            self.db["replication"].rows_where(
                f"bucket = ? AND state = 'verified' AND log_seq IS NULL AND kind IN ({marks})",
                [bucket, *LOGGED_KINDS],
                order_by="rowid",
                limit=limit,
            )
        )

    def mark_logged(self, bucket: str, keys: Sequence[str], seq: int) -> None:
        self.db.conn.executemany(
            "UPDATE replication SET log_seq = ? WHERE bucket = ? AND key = ?",
            [(seq, bucket, key) for key in keys],
        )

    def verified_objects(self, bucket: str, shas: Iterable[str]) -> set[str]:
        wanted = sorted(set(shas))
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(
                str(ref)
                for (ref,) in self.db.execute(
                    f"SELECT ref FROM replication WHERE bucket = ? AND kind = 'object' "
                    f"AND state = 'verified' AND ref IN ({marks})",
                    [bucket, *chunk],
                ).fetchall()
            )
        return found

    def object_retention_wanted(self, bucket: str) -> list[dict[str, Any]]:
        """Each verified object with what its live recordings want: the latest
        `expires_at`, and whether any is permanent or never expires (held, open case)."""
        return [
            dict(r)
            for r in self.db.query(
                "SELECT q.key, q.version_id, q.retain_until, q.ref AS sha256, "
                "  MAX(r.tier = 'permanent' OR r.expires_at IS NULL) AS forever, "
                "  MAX(r.expires_at) AS expires_at "
                "FROM replication q JOIN recordings r ON r.sha256 = q.ref "
                "WHERE q.bucket = ? AND q.kind = 'object' AND q.state = 'verified' "
                "  AND r.retention_state != 'deleted' "
                "GROUP BY q.key",
                [bucket],
            )
        ]

    def locked_for_ever(self, bucket: str) -> list[dict[str, Any]]:
        """Verified rows that are the log itself (and session extracts): locked like
        permanent footage."""
        return list(
            self.db["replication"].rows_where(
                "bucket = ? AND state = 'verified' AND kind != 'object'", [bucket]
            )
        )

    def upload_counts(self, bucket: str) -> dict[str, Any]:
        """Queue figures for `status`: rows and bytes by state, the oldest pending."""
        counts = {
            str(state): (int(n), int(size or 0))
            for state, n, size in self.db.execute(
                "SELECT state, COUNT(*), SUM(size) FROM replication WHERE bucket = ? "
                "GROUP BY state",
                [bucket],
            ).fetchall()
        }
        oldest = self.db.execute(
            "SELECT MIN(queued_at) FROM replication WHERE bucket = ? "
            "AND state IN ('pending', 'uploading')",
            [bucket],
        ).fetchone()[0]
        error = self.db.execute(
            "SELECT key, last_error, attempts FROM replication WHERE bucket = ? "
            "AND state IN ('pending', 'uploading') AND last_error IS NOT NULL "
            "ORDER BY started_at DESC LIMIT 1",
            [bucket],
        ).fetchone()
        recent = self.db.execute(
            "SELECT SUM(size), SUM(seconds) FROM (SELECT size, seconds FROM replication "
            "WHERE bucket = ? AND state = 'verified' AND seconds > 0 "
            "ORDER BY verified_at DESC LIMIT 100)",
            [bucket],
        ).fetchone()
        checkpoints = self.db.execute(
            "SELECT COUNT(*) FROM replication WHERE bucket = ? AND kind = 'checkpoint' "
            "AND state = 'verified'",
            [bucket],
        ).fetchone()[0]
        return {
            "counts": counts,
            "oldest_queued_at": oldest,
            "last_error": None if error is None else {"key": error[0], "error": error[1],
                                                       "attempts": error[2]},
            "recent_bytes": int(recent[0] or 0),
            "recent_seconds": float(recent[1] or 0.0),
            "verified_checkpoints": int(checkpoints),
        }  # fmt: skip

    def replication_rows(self) -> list[dict[str, Any]]:
        return list(self.db["replication"].rows_where(order_by="rowid"))

    def object_retention(self, sha256: str) -> tuple[int, bool, str | None]:
        """(live recordings, never expires, latest expiry) of those sharing an object."""
        row = self.db.execute(
            "SELECT COUNT(*), MAX(tier = 'permanent' OR expires_at IS NULL), MAX(expires_at) "
            "FROM recordings WHERE sha256 = ? AND retention_state != 'deleted'",
            [sha256],
        ).fetchone()
        return int(row[0]), bool(row[1]), row[2]

    def session_extract(self, session_id: int) -> dict[str, Any] | None:
        """A docking session and its recordings as the catalog holds them (JSON-ready)."""
        rows = list(self.db["sessions"].rows_where("id = ?", [session_id]))
        if not rows:
            return None
        recordings = [
            {k: v for k, v in r.items() if k not in ("source_path", "media")}
            | {"media": json.loads(r["media"]) if r.get("media") else None}
            for r in self.db["recordings"].rows_where("session_id = ?", [session_id], order_by="id")
        ]
        return {"session": rows[0], "recordings": recordings}

    def recording_ids_of_session(self, session_id: int) -> list[int]:
        return [
            int(i)
            for (i,) in self.db.execute(
                "SELECT id FROM recordings WHERE session_id = ? ORDER BY id", [session_id]
            ).fetchall()
        ]

    def ended_session_ids(self) -> list[int]:
        return [
            int(i)
            for (i,) in self.db.execute(
                "SELECT id FROM sessions WHERE state != 'running' ORDER BY id"
            ).fetchall()
        ]
