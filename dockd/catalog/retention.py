"""Retention: the columns the policy sets, and what the plan and the sweep read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dockd.catalog.base import Tables
from dockd.errors import CatalogError

RETENTION_COLUMNS = frozenset(
    {"tier", "expires_at", "keep_until", "retention_state", "pending_since", "deleted_at"}
)


class RetentionTables(Tables):
    """The retention columns of recordings, with holds and cases as they protect them."""

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

    def has_untiered(self) -> bool:
        """Does a recording not deleted lack its tier (from before schema 5)?"""
        return bool(
            self.db.execute(
                "SELECT EXISTS (SELECT 1 FROM recordings "
                "WHERE tier IS NULL AND retention_state != 'deleted')"
            ).fetchone()[0]
        )

    def expiring_ids(self, after: str, until: str) -> list[int]:
        """Live recordings whose expiry is in (after, until], by expiry then id."""
        return [
            int(r[0])
            for r in self.db.execute(
                "SELECT id FROM recordings WHERE retention_state = 'live' "
                "AND expires_at > ? AND expires_at <= ? ORDER BY expires_at, id",
                [after, until],
            )
        ]

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
