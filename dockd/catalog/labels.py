"""Labels, cases and their links, legal holds, gap explanations (schema 5)."""

from __future__ import annotations

import json
from typing import Any

from dockd.catalog.base import Tables, decoded, json_lists
from dockd.labels import CaseLabels


class LabelTables(Tables):
    """cases, case_links, holds, hold_items, gap_explanations; a recording's labels."""

    def update_labels(self, recording_id: int, values: dict[str, Any]) -> None:
        """cause / parties / categories / notes (lists as JSON); never the facts."""
        encoded = {
            k: json.dumps(list(v), ensure_ascii=False) if isinstance(v, list | tuple) else v
            for k, v in values.items()
        }
        self.db.table("recordings").update(recording_id, encoded)

    def insert_case(self, values: dict[str, Any]) -> None:
        self.db.table("cases").insert(json_lists(values, "parties", "categories"))

    def case(self, no: str) -> dict[str, Any] | None:
        rows = list(self.db["cases"].rows_where("no = ?", [no]))
        return decoded(rows[0], "parties", "categories") if rows else None

    def cases(self) -> list[dict[str, Any]]:
        return [
            decoded(r, "parties", "categories")
            for r in self.db["cases"].rows_where(order_by="created_at, no")
        ]

    def case_rows(self) -> list[dict[str, Any]]:
        """Every case's row as stored (parties, categories: undecoded JSON), in `cases()`'s
        order: for verify, which must report a value no writer could have stored."""
        return list(self.db["cases"].rows_where(order_by="created_at, no"))

    def case_link_counts(self) -> dict[str, int]:
        """case number -> how many recordings are linked to it (cases with none: absent)."""
        return {
            str(no): int(n)
            for no, n in self.db.execute(
                "SELECT case_no, COUNT(*) FROM case_links GROUP BY case_no"
            )
        }

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
