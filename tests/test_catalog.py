"""Catalog: schema version, forward migrations, refusal of newer or foreign files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from dockd import catalog as catalog_module
from dockd.catalog import SCHEMA_VERSION, Catalog
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

    monkeypatch.setattr(catalog_module, "MIGRATIONS", (*catalog_module.MIGRATIONS, add_column))
    monkeypatch.setattr(catalog_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):
        cat = Catalog(path)
        assert cat.version == SCHEMA_VERSION + 1
        assert cat.sessions()[0]["device_serial"] == "S"
        assert "dock_slot" in cat.sessions()[0]
        cat.close()
    assert calls == [1]


def test_one_writer_at_a_time(config: Config) -> None:
    with Service(config), pytest.raises(StateBusyError, match="another dockd process"):
        Service(config, lock_wait_s=0.3)
    with Service(config, write=False) as reader:
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
