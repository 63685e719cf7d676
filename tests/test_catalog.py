"""Catalog: schema version, forward migrations, refusal of newer or foreign files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils

from dockd.catalog import SCHEMA_VERSION, Catalog
from dockd.catalog import schema as catalog_schema
from dockd.clock import SystemClock
from dockd.config import Config
from dockd.errors import CatalogError
from dockd.service import Service, StateBusyError


def test_new_catalog_is_at_current_version(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "c.sqlite")
    assert cat.version == SCHEMA_VERSION >= 1
    assert {"log", "recordings", "sessions"} <= set(cat.db.table_names())
    cat.close()


def test_newer_catalog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(CatalogError, match="newer than this dockd understands"):
        Catalog(path)


def test_foreign_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogError, match="cannot open the catalog"):
        Catalog(path)


def test_forward_migration_runs_once_and_keeps_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.sqlite"
    cat = Catalog(path)
    with cat.transaction():
        cat.insert_session(
            {
                "device_serial": "S",
                "profile": "p",
                "source": "/x",
                "started_at": "t",
                "state": "done",
            }
        )
    cat.close()
    calls: list[int] = []

    def add_column(db: sqlite_utils.Database) -> None:
        calls.append(1)
        db.execute("ALTER TABLE sessions ADD COLUMN dock_slot TEXT")

    monkeypatch.setattr(catalog_schema, "MIGRATIONS", (*catalog_schema.MIGRATIONS, add_column))
    monkeypatch.setattr(catalog_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):
        cat = Catalog(path)
        assert cat.version == SCHEMA_VERSION + 1
        assert cat.sessions()[0]["device_serial"] == "S"
        assert "dock_slot" in cat.sessions()[0]
        cat.close()
    assert calls == [1]


def test_one_writer_at_a_time(config: Config) -> None:
    with (
        Service(config, SystemClock()),
        pytest.raises(StateBusyError, match="another dockd process"),
    ):
        Service(config, SystemClock(), lock_wait_s=0.3)
    with Service(config, SystemClock(), write=False) as reader:
        assert reader.recordings() == []


def test_rolled_back_append_does_not_corrupt_the_tree(tmp_path: Path) -> None:
    """The in-memory right edge of the tree follows a rollback (invariant 3)."""
    from datetime import UTC, datetime

    from dockd.integrity.chain import check_chain, next_entry
    from dockd.integrity.merkle import build_nodes, leaf_hash, root_hash

    cat = Catalog(tmp_path / "c.sqlite")
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        seq, digest = cat.head()
        if i == 2:
            with pytest.raises(RuntimeError), cat.transaction():
                cat.append(next_entry(seq, digest, moment, "t", {"i": "rolled back"}))
                raise RuntimeError("abort")
        with cat.transaction():
            cat.append(next_entry(seq, digest, moment, "t", {"i": i}))
    rows = list(cat.log_rows())
    assert check_chain(rows) == []
    assert cat.stored_nodes() == build_nodes(leaf_hash(r.raw) for r in rows)
    assert root_hash(cat.node, 5) == root_hash(lambda lv, ix: cat.stored_nodes()[(lv, ix)], 5)
    cat.close()


# -- the methods for tables the service used to reach through `catalog.db` -------------

MOMENT = "2026-01-01T00:00:00Z"


def _log(cat: Catalog, kind: str = "t", data: dict[str, object] | None = None) -> int:
    """Append one entry (inside the caller's transaction); its seq."""
    from datetime import UTC, datetime

    from dockd.integrity.chain import next_entry

    seq, digest = cat.head()
    cat.append(next_entry(seq, digest, datetime(2026, 1, 1, tzinfo=UTC), kind, data or {}))
    return seq + 1


def _recording(cat: Catalog, n: int, **values: object) -> int:
    row: dict[str, object] = {
        "id": cat.next_id("recordings"),
        "sha256": f"{n:064x}",
        "size": 100 * n,
        "source_path": f"DCIM/{n}.MP4".encode(),
        "source_path_text": f"DCIM/{n}.MP4",
        "source_mtime_ns": n,
        "store_path": f"objects/{n}",
        "device_serial": "CAM1" if n % 2 else "CAM2",
        "device_number": None,
        "profile": "p",
        "officer": None,
        "sequence": n,
        "recorded_start": f"2026-01-01T00:{n:02d}:00Z",
        "recorded_end": f"2026-01-01T00:{n:02d}:30Z",
        "time_source": "metadata",
        "clock_offset_s": None,
        "ingested_at": MOMENT,
        "deadline": MOMENT,
        "late": False,
        "flags": [],
        "media": {},
        "session_id": None,
        "log_seq": _log(cat, "recording.ingested", {"n": n}),
        **values,
    }
    return cat.insert_recording(row)


@pytest.fixture
def cat(tmp_path: Path) -> Iterator[Catalog]:
    catalog = Catalog(tmp_path / "c.sqlite")
    yield catalog
    catalog.close()


def test_next_id_follows_the_largest_id(cat: Catalog) -> None:
    assert cat.next_id("recordings") == 1
    assert cat.next_id("exports") == 1
    with cat.transaction():
        assert [_recording(cat, n) for n in (1, 2)] == [1, 2]
        _recording(cat, 3, id=7)
    assert cat.next_id("recordings") == 8
    assert cat.next_id("holds") == 1
    # Tables without a writer-assigned integer id, and names that are not tables.
    for table in ("cases", "discs", "log", "recordings; DROP TABLE log"):
        with pytest.raises(CatalogError, match="no integer id"):
            cat.next_id(table)


def _export(cat: Catalog, copies: int = 2) -> int:
    """An export of recordings 1-3 on two discs a copy: (1, 2) and (3)."""
    export_id = cat.next_id("exports")
    cat.insert_export(
        {
            "id": export_id,
            "created_at": MOMENT,
            "medium": "bd25",
            "capacity": 25_000_000_000,
            "copies": copies,
            "selection": {"tier": "permanent", "cases": []},
            "approved_by": "sgt",
            "reason": "R5",
            "by": "clerk",
            "log_seq": _log(cat, "export.planned"),
        }
    )
    for copy in range(1, copies + 1):
        for number, ids in ((1, [2, 1]), (2, [3])):
            cat.insert_disc(f"X-{export_id}-{number}-{copy}", export_id, number, copy, ids)
    return export_id


def test_exports_and_discs_round_trip(cat: Catalog) -> None:
    with cat.transaction():
        for n in (1, 2, 3):
            _recording(cat, n)
        first = _export(cat)
        second = _export(cat, copies=1)
    assert (first, second) == (1, 2)
    export = cat.export(first)
    assert export is not None
    assert export["selection"] == {"tier": "permanent", "cases": []}
    assert (export["copies"], export["approved_by"], export["by"]) == (2, "sgt", "clerk")
    assert cat.export(99) is None
    assert [e["id"] for e in cat.exports()] == [1, 2]
    # The stored selection is canonical JSON (sorted keys), as the log entry is.
    stored = cat.db.execute("SELECT selection FROM exports WHERE id = 1").fetchone()[0]
    assert stored == '{"cases": [], "tier": "permanent"}'

    discs = cat.discs(first)
    assert [(d["label"], d["copy"], d["number"]) for d in discs] == [
        ("X-1-1-1", 1, 1), ("X-1-2-1", 1, 2), ("X-1-1-2", 2, 1), ("X-1-2-2", 2, 2),
    ]  # fmt: skip
    assert [d["recordings"] for d in discs] == [[1, 2], [3], [1, 2], [3]]
    assert discs[0]["image_sha256"] is None and discs[0]["burned_at"] is None
    assert [d["label"] for d in cat.discs()] == [*(d["label"] for d in discs), "X-2-1-1", "X-2-2-1"]
    assert cat.disc("X-2-2-1") == {**cat.discs(second)[1]}
    assert cat.disc("nope") is None
    assert cat.discs_per_copy(first) == 2
    assert cat.disc_items(second) == {"X-2-1-1": [(1, None), (2, None)], "X-2-2-1": [(3, None)]}
    assert len(cat.disc_items()) == 6


def test_a_disc_build_and_burn_are_recorded(cat: Catalog) -> None:
    with cat.transaction():
        for n in (1, 2, 3):
            _recording(cat, n)
        _export(cat, copies=1)
        built = _log(cat, "export.disc_built")
        cat.record_disc_build(
            "X-1-1-1",
            image_sha256="ab" * 32,
            image_size=2048,
            built_at=MOMENT,
            log_seq=built,
            bag_paths={1: "data/a.mp4", 2: "data/b.mp4"},
        )
        burned = _log(cat, "export.disc_burned")
        cat.record_disc_burn("X-1-1-1", burned_at=MOMENT, drive="/dev/sr0", log_seq=burned)
    disc = cat.disc("X-1-1-1")
    assert disc is not None
    assert (disc["image_sha256"], disc["image_size"], disc["built_at"]) == ("ab" * 32, 2048, MOMENT)
    assert (disc["build_log_seq"], disc["burn_log_seq"], disc["drive"]) == (
        built,
        burned,
        "/dev/sr0",
    )
    assert cat.disc_items(1)["X-1-1-1"] == [(1, "data/a.mp4"), (2, "data/b.mp4")]
    assert cat.disc_items(1)["X-1-2-1"] == [(3, None)]
    with pytest.raises(CatalogError, match="no disc X-9"):
        cat.record_disc_burn("X-9", burned_at=MOMENT, drive="d", log_seq=burned)
    # Discs and their items are history.
    with pytest.raises(sqlite3.DatabaseError, match="discs are history"):
        cat.db.execute("DELETE FROM disc_items")


def test_export_candidates(cat: Catalog) -> None:
    with cat.transaction():
        for n in (1, 2, 3, 4):
            _recording(cat, n, tier="permanent" if n != 2 else "routine")
        cat.update_retention(4, {"retention_state": "deleted", "deleted_at": MOMENT})
        cat.insert_case(
            {"no": "C-1", "cause": "x", "parties": [], "categories": [], "state": "open",
             "created_at": MOMENT, "log_seq": _log(cat)}
        )  # fmt: skip
        cat.link("C-1", [2, 3], MOMENT, _log(cat))
    assert cat.export_candidates(tier="permanent") == [(1, 100, None), (3, 300, "C-1")]
    assert cat.export_candidates() == [(1, 100, None), (2, 200, "C-1"), (3, 300, "C-1")]
    assert cat.export_candidates(cases=("C-1",)) == [(2, 200, "C-1"), (3, 300, "C-1")]
    with cat.transaction():
        _export(cat, copies=1)  # holds 1, 2, 3
    assert cat.export_candidates(not_exported=True) == []
    assert cat.export_candidates(tier="permanent", not_exported=False)[0] == (1, 100, None)


def test_the_read_helpers_for_counts_and_ids(cat: Catalog) -> None:
    with cat.transaction():
        for n in (1, 2, 3):
            _recording(cat, n, tier=None if n == 3 else "routine")
        _recording(cat, 4, sha256=f"{1:064x}", tier="routine")
        cat.update_retention(1, {"expires_at": "2026-02-01T00:00:00Z"})
        cat.update_retention(2, {"expires_at": "2026-03-01T00:00:00Z"})
        cat.insert_case(
            {"no": "C-1", "cause": "x", "parties": [], "categories": [], "state": "open",
             "created_at": MOMENT, "log_seq": _log(cat)}
        )  # fmt: skip
        cat.link("C-1", [1, 2], MOMENT, _log(cat, "retention.policy", {"v": 1}))
        _log(cat, "retention.policy", {"v": 2})
    assert cat.recording_counts_by_device() == {"CAM1": 2, "CAM2": 2}
    assert cat.recording_ids_of_object(f"{1:064x}") == [1, 4]
    assert cat.case_link_counts() == {"C-1": 2}
    assert cat.has_untiered()
    assert cat.expiring_ids("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z") == [2]
    assert cat.expiring_ids("2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z") == [1, 2]
    last = cat.last_entry_of_kind("retention.policy")
    assert last is not None and b'"v":2' in last.replace(b" ", b"")
    assert cat.last_entry_of_kind("no.such.kind") is None
    rows = list(cat.recording_rows())
    assert [r["id"] for r in rows] == [1, 2, 3, 4] and isinstance(rows[0]["flags"], str)
    with cat.transaction():
        cat.update_retention(3, {"retention_state": "deleted", "deleted_at": MOMENT})
    assert not cat.has_untiered()
    assert cat.live_recording_ids() == [1, 2, 4]


def test_the_rows_as_stored_for_verify(cat: Catalog) -> None:
    """verify reads rows undecoded, so that a value no writer stores is reported, not fatal."""
    with cat.transaction():
        for n in (1, 2, 3):
            _recording(cat, n)
        for i, serial in ((2, "CAM2"), (1, "CAM1")):
            cat.insert_assignment(
                {"id": i, "serial": serial, "officer": "o", "unit": None, "device_number": None,
                 "valid_from": "not a time" if i == 2 else MOMENT, "valid_to": None,
                 "created_at": MOMENT, "reason": None, "log_seq": _log(cat)}
            )  # fmt: skip
        cat.record_fixity(f"{2:064x}", MOMENT, False)
        cat.record_fixity(f"{1:064x}", MOMENT, True)
        for no, created in (("C-2", MOMENT), ("C-1", "2026-02-01T00:00:00Z"), ("C-0", MOMENT)):
            cat.insert_case(
                {"no": no, "cause": "x", "parties": ["p"], "categories": [], "state": "open",
                 "created_at": created, "log_seq": _log(cat)}
            )  # fmt: skip
        _export(cat, copies=1)
    cat.db.execute("UPDATE exports SET selection = 'not json' WHERE id = 1")
    cat.db.execute("UPDATE cases SET parties = '[oops' WHERE no = 'C-2'")
    cat.db.execute("PRAGMA foreign_keys=OFF")
    cat.db.execute("INSERT INTO disc_items (label, recording_id) VALUES ('LOST', 1)")
    cat.db.execute("PRAGMA foreign_keys=ON")

    assignments = cat.assignment_rows()
    assert [(a["id"], a["valid_from"]) for a in assignments] == [(1, MOMENT), (2, "not a time")]
    assert cat.fixity_rows() == [
        {"sha256": f"{1:064x}", "last_checked_at": MOMENT, "last_ok": 1},
        {"sha256": f"{2:064x}", "last_checked_at": MOMENT, "last_ok": 0},
    ]
    cases = cat.case_rows()
    assert [c["no"] for c in cases] == ["C-0", "C-2", "C-1"]  # as cases() orders them
    assert [c["parties"] for c in cases] == ['["p"]', "[oops", '["p"]']
    exports = cat.export_rows()
    assert [(e["id"], e["selection"], e["approved_by"]) for e in exports] == [
        (1, "not json", "sgt")
    ]
    assert [(i["label"], i["recording_id"], i["bag_path"]) for i in cat.disc_item_rows()] == [
        ("LOST", 1, None), ("X-1-1-1", 1, None), ("X-1-1-1", 2, None), ("X-1-2-1", 3, None),
    ]  # fmt: skip
    assert "LOST" not in cat.disc_items()  # joins its disc


def test_every_public_method_holds_the_mutex(cat: Catalog) -> None:
    """The mixins' methods are serialised like Catalog's own (one connection, many threads)."""
    import threading

    for name in ("next_id", "search", "head", "insert_export", "discs", "held_ids"):
        assert hasattr(getattr(Catalog, name), "__wrapped__"), name
    done = threading.Event()
    with cat.transaction():
        worker = threading.Thread(target=lambda: (cat.discs(), done.set()))
        worker.start()
        assert not done.wait(0.2)  # waits for the transaction's end
    worker.join(5)
    assert done.is_set()
