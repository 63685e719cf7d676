"""Sessions, recordings, devices and assignments, fixity; the recording queries."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from dockd.catalog.base import Tables
from dockd.devices.registry import Assignment
from dockd.model import Recording, RecordingFilter


class RecordingTables(Tables):
    """sessions, recordings, devices, assignments, fixity."""

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

    def recordings_by_id(self, ids: Sequence[int]) -> list[Recording]:
        found: list[Recording] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found += [
                Recording.from_row(r)
                for r in self.db["recordings"].rows_where(f"id IN ({marks})", chunk, order_by="id")
            ]
        return found

    def recording_rows(self) -> Iterator[dict[str, Any]]:
        """Every recording's row as stored (undecoded JSON), by id: for verify, which must
        report a row no writer could have stored rather than fail on it."""
        yield from self.db["recordings"].rows_where(order_by="id")

    def recording_ids_of_objects(self, shas: Sequence[str]) -> list[int]:
        """The live recordings that refer to any of these store objects, by id."""
        found: set[int] = set()
        for start in range(0, len(shas), 500):
            chunk = list(shas[start : start + 500])
            marks = ",".join("?" * len(chunk))
            found.update(
                int(r[0])
                for r in self.db.execute(
                    f"SELECT id FROM recordings WHERE sha256 IN ({marks}) "
                    "AND retention_state != 'deleted'",
                    chunk,
                )
            )
        return sorted(found)

    def recording_ids_of_object(self, sha256: str) -> list[int]:
        """The recordings (deleted ones too) that refer to this store object, by id."""
        return [
            int(r[0])
            for r in self.db.execute(
                "SELECT id FROM recordings WHERE sha256 = ? ORDER BY id", [sha256]
            )
        ]

    def live_recording_ids(self) -> list[int]:
        """Every recording not deleted by retention, by id."""
        return [
            int(r[0])
            for r in self.db.execute(
                "SELECT id FROM recordings WHERE retention_state != 'deleted' ORDER BY id"
            )
        ]

    def recording_counts_by_device(self) -> dict[str, int]:
        """device serial -> how many recordings (tombstones too) the catalog holds of it."""
        return {
            str(serial): int(n)
            for serial, n in self.db.execute(
                "SELECT device_serial, COUNT(*) FROM recordings GROUP BY device_serial"
            )
        }

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

    def assignment_rows(self) -> list[dict[str, Any]]:
        """Every assignment's row as stored, by id: for verify, which must report a
        tampered time rather than fail `Assignment`'s parse of it."""
        return list(self.db["assignments"].rows_where(order_by="id"))

    # -- fixity ------------------------------------------------------------------

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

    def fixity_rows(self) -> list[dict[str, Any]]:
        """Every fixity row as stored (sha256, last_checked_at, last_ok), by sha256."""
        return list(self.db["fixity"].rows_where(order_by="sha256"))

    def referenced_objects(self) -> set[str]:
        """The objects the store must hold: those of recordings not deleted by retention."""
        return {
            str(r[0])
            for r in self.db.execute(
                "SELECT DISTINCT sha256 FROM recordings WHERE retention_state != 'deleted'"
            )
        }

    # -- queries -------------------------------------------------------------------

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
            "cases", "retention_state", "size", "tier", "deleted_at",
        )  # fmt: skip
        rows = self.db.execute(
            "SELECT r.id, r.device_serial, r.device_number, r.officer, r.unit, r.session_id, "
            "r.sequence, r.recorded_start, r.recorded_end, r.ingested_at, r.late, r.flags, "
            "r.cause, (SELECT COUNT(*) FROM case_links l WHERE l.recording_id = r.id), "
            "r.retention_state, r.size, r.tier, r.deleted_at "
            f"FROM recordings r {where} ORDER BY r.id",
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

    def ingest_figures(self) -> tuple[int, int, int, dict[str, int]]:
        """(recordings ever ingested, their bytes, late ones, live recordings per flag):
        for /metrics, in two aggregate queries (never a row per recording in memory)."""
        total, size, late = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(late), 0) FROM recordings"
        ).fetchone()
        flags = {
            str(flag): int(n)
            for flag, n in self.db.execute(
                "SELECT j.value, COUNT(*) FROM recordings, json_each(recordings.flags) j "
                "WHERE recordings.retention_state != 'deleted' GROUP BY j.value"
            ).fetchall()
        }
        return int(total), int(size), int(late), flags
