"""Archival disc exports: exports, discs and disc_items (schema 6).

An export is recorded with its discs and their items before any I/O
(Service.create_export); a disc's build and burn then fill in its image
hash, its items' bag paths, and the drive that burned it. None of these
rows is ever deleted (triggers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dockd.catalog.base import Tables
from dockd.errors import CatalogError


class ExportTables(Tables):
    """exports, discs, disc_items; the recordings an export would take."""

    # -- exports ---------------------------------------------------------------

    def insert_export(self, values: dict[str, Any]) -> None:
        """One approved export; `selection` (a dict) is stored as canonical JSON."""
        self.db.table("exports").insert(
            {**values, "selection": json.dumps(values["selection"], sort_keys=True)}
        )

    def export(self, export_id: int) -> dict[str, Any] | None:
        """The export's row, `selection` decoded; None if there is no such export."""
        rows = list(self.db["exports"].rows_where("id = ?", [export_id]))
        return _export_row(rows[0]) if rows else None

    def exports(self) -> list[dict[str, Any]]:
        """Every export's row in id order, `selection` decoded (discs: `discs(id)`)."""
        return [_export_row(r) for r in self.db["exports"].rows_where(order_by="id")]

    def export_rows(self) -> list[dict[str, Any]]:
        """Every export's row as stored (`selection`: undecoded JSON), by id: for verify,
        which must report a value no writer could have stored rather than fail on it."""
        return list(self.db["exports"].rows_where(order_by="id"))

    def export_candidates(
        self,
        *,
        tier: str | None = None,
        cases: tuple[str, ...] = (),
        not_exported: bool = False,
    ) -> list[tuple[int, int, str | None]]:
        """(id, size, first case) of live recordings of `tier` (None: any), of `cases`.

        `not_exported`: only recordings that no disc holds yet. In id order.
        """
        clauses = ["r.retention_state != 'deleted'"]
        args: list[Any] = []
        if tier:
            clauses.append("r.tier = ?")
            args.append(tier)
        if cases:
            marks = ",".join("?" * len(cases))
            clauses.append(
                "EXISTS (SELECT 1 FROM case_links l WHERE l.recording_id = r.id "
                f"AND l.case_no IN ({marks}))"
            )
            args += list(cases)
        if not_exported:
            clauses.append("NOT EXISTS (SELECT 1 FROM disc_items d WHERE d.recording_id = r.id)")
        rows = self.db.execute(
            "SELECT r.id, r.size, (SELECT MIN(case_no) FROM case_links l "
            f"WHERE l.recording_id = r.id) FROM recordings r WHERE {' AND '.join(clauses)} "
            "ORDER BY r.id",
            args,
        )
        return [(int(i), int(s), None if c is None else str(c)) for i, s, c in rows]

    # -- discs -------------------------------------------------------------------

    def insert_disc(
        self, label: str, export_id: int, number: int, copy: int, recording_ids: Iterable[int]
    ) -> None:
        """A planned disc of an export and the recordings it will hold (not yet built)."""
        self.db.table("discs").insert(
            {"label": label, "export_id": export_id, "number": number, "copy": copy}
        )
        self.db.table("disc_items").insert_all(
            {"label": label, "recording_id": i} for i in recording_ids
        )

    def discs(self, export_id: int | None = None) -> list[dict[str, Any]]:
        """Discs (of one export, or all) by export, copy, number; `recordings`: their ids."""
        where, args = ("export_id = ?", [export_id]) if export_id is not None else (None, [])
        found = list(self.db["discs"].rows_where(where, args, order_by="export_id, copy, number"))
        items = self.disc_items(export_id)
        return [{**d, "recordings": [i for i, _ in items.get(d["label"], [])]} for d in found]

    def disc(self, label: str) -> dict[str, Any] | None:
        """One disc's row with `recordings` (its recording ids), or None."""
        rows = list(self.db["discs"].rows_where("label = ?", [label]))
        if not rows:
            return None
        items = self.db.execute(
            "SELECT recording_id FROM disc_items WHERE label = ? ORDER BY recording_id", [label]
        )
        return {**rows[0], "recordings": [int(r[0]) for r in items]}

    def disc_items(self, export_id: int | None = None) -> dict[str, list[tuple[int, str | None]]]:
        """label -> [(recording id, bag path or None before the build)], by recording id."""
        where, args = ("WHERE d.export_id = ?", [export_id]) if export_id is not None else ("", [])
        found: dict[str, list[tuple[int, str | None]]] = {}
        for label, rid, bag_path in self.db.execute(
            "SELECT i.label, i.recording_id, i.bag_path FROM disc_items i "
            f"JOIN discs d ON d.label = i.label {where} ORDER BY i.label, i.recording_id",
            args,
        ):
            found.setdefault(str(label), []).append(
                (int(rid), None if bag_path is None else str(bag_path))
            )
        return found

    def disc_item_rows(self) -> list[dict[str, Any]]:
        """Every disc_items row as stored, by label and recording id, a row whose disc
        is missing too (`disc_items()` joins its disc): for verify."""
        return list(self.db["disc_items"].rows_where(order_by="label, recording_id"))

    def discs_per_copy(self, export_id: int) -> int:
        """How many discs one copy of the export takes."""
        return int(
            self.db.execute(
                "SELECT COUNT(*) FROM discs WHERE export_id = ? AND copy = 1", [export_id]
            ).fetchone()[0]
        )

    def record_disc_build(
        self,
        label: str,
        *,
        image_sha256: str,
        image_size: int,
        built_at: str,
        log_seq: int,
        bag_paths: dict[int, str],
    ) -> None:
        """A disc's image was built: its hash and size, and where each recording sits in the bag."""
        done = self.db.execute(
            "UPDATE discs SET image_sha256 = ?, image_size = ?, built_at = ?, build_log_seq = ? "
            "WHERE label = ?",
            [image_sha256, image_size, built_at, log_seq, label],
        )
        _found(done.rowcount, label)
        self.db.conn.executemany(
            "UPDATE disc_items SET bag_path = ? WHERE label = ? AND recording_id = ?",
            [(path, label, rid) for rid, path in bag_paths.items()],
        )

    def record_disc_burn(self, label: str, *, burned_at: str, drive: str, log_seq: int) -> None:
        """A disc was burned and read back as its image."""
        done = self.db.execute(
            "UPDATE discs SET burned_at = ?, drive = ?, burn_log_seq = ? WHERE label = ?",
            [burned_at, drive, log_seq, label],
        )
        _found(done.rowcount, label)


def _found(rowcount: int, label: str) -> None:
    if rowcount != 1:
        raise CatalogError(f"no disc {label} in the catalog")


def _export_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "selection": json.loads(row["selection"])}
