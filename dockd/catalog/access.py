"""Access requests, their decisions, each use of a grant; confidential marks (schema 7)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dockd.catalog.base import Tables, decoded, json_lists


class AccessTables(Tables):
    """access_requests, access_uses, and recordings.confidential."""

    def insert_request(self, values: dict[str, Any]) -> None:
        self.db.table("access_requests").insert(json_lists(values, "recordings"))

    def record_decision(self, request_id: int, values: dict[str, Any]) -> None:
        """state, decided_by/uid/at, decision_note, expires_at, decision_log_seq: once."""
        self.db.table("access_requests").update(request_id, values)

    def access_request(self, request_id: int) -> dict[str, Any] | None:
        rows = list(self.db["access_requests"].rows_where("id = ?", [request_id]))
        return decoded(rows[0], "recordings") if rows else None

    def access_requests(self) -> list[dict[str, Any]]:
        return [
            decoded(r, "recordings") for r in self.db["access_requests"].rows_where(order_by="id")
        ]

    def access_request_rows(self) -> list[dict[str, Any]]:
        """As stored (recordings: undecoded JSON): for verify."""
        return list(self.db["access_requests"].rows_where(order_by="id"))

    def insert_access_use(self, values: dict[str, Any]) -> None:
        encoded = json_lists(values, "recordings")
        encoded["detail"] = json.dumps(values.get("detail") or {}, ensure_ascii=False)
        self.db.table("access_uses").insert(encoded)

    def access_uses(self, request_id: int | None = None) -> list[dict[str, Any]]:
        where, args = ("request_id = ?", [request_id]) if request_id is not None else (None, [])
        return [
            decoded(r, "recordings", "detail")
            for r in self.db["access_uses"].rows_where(where, args, order_by="id")
        ]

    def access_use_counts(self) -> dict[int, int]:
        """request id -> how many times its grant was used."""
        query = "SELECT request_id, COUNT(*) FROM access_uses GROUP BY request_id"
        return {int(r[0]): int(r[1]) for r in self.db.execute(query)}

    def access_use_rows(self) -> list[dict[str, Any]]:
        return list(self.db["access_uses"].rows_where(order_by="id"))

    def mark_confidential(self, ids: Sequence[int], level: str | None) -> None:
        marks = ",".join("?" * len(ids))
        self.db.execute(
            f"UPDATE recordings SET confidential = ? WHERE id IN ({marks})", [level, *ids]
        )
