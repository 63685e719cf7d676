"""`Catalog`: the table families composed over one SQLite connection.

SQLite runs with journal_mode=WAL and synchronous=FULL: with NORMAL a
commit can vanish at a power cut, after the camera's copy was deleted on
the strength of it (DESIGN §4a). Opening a catalog runs its forward
migrations (dockd/catalog/schema.py). One connection serves the daemon's
worker threads: every public method runs under the catalog's mutex, and
`transaction()` holds it for the whole transaction.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from dockd.catalog import schema
from dockd.catalog.access import AccessTables
from dockd.catalog.exports import ExportTables
from dockd.catalog.labels import LabelTables
from dockd.catalog.ledger import LedgerTables
from dockd.catalog.recordings import RecordingTables
from dockd.catalog.replication import ReplicationTables
from dockd.catalog.retention import RetentionTables
from dockd.errors import CatalogError
from dockd.integrity.merkle import CompactRange

# Tables whose rows get their id from the writer (`next_id`), before the
# log entry that names the id is written.
ID_TABLES = frozenset(
    {
        "recordings",
        "sessions",
        "assignments",
        "holds",
        "gap_explanations",
        "exports",
        "checkpoints",
        "access_requests",
        "access_uses",
    }
)


class Catalog(
    LedgerTables,
    RecordingTables,
    LabelTables,
    RetentionTables,
    ExportTables,
    AccessTables,
    ReplicationTables,
):
    """The catalog: recordings, sessions and the evidence log in one SQLite file.

    Only the service calls the writing methods, inside `transaction()`.
    """

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
        # Read from the module at each open, so that a test can add a migration.
        version, newest = self.version, schema.SCHEMA_VERSION
        if version > newest:
            raise CatalogError(
                f"{self.path}: catalog schema version {version} is newer than this dockd "
                f"understands ({newest}); upgrade dockd"
            )
        for target in range(version + 1, newest + 1):
            with self.db.atomic():
                schema.MIGRATIONS[target - 1](self.db)
                self.db.execute(f"PRAGMA user_version={target}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # One connection serves the daemon's worker threads: a transaction
        # holds the mutex so that no other thread's statement joins it.
        with self._mutex, self.db.atomic():
            yield

    def next_id(self, table: str) -> int:
        """The id the next row of `table` gets (1 for an empty table).

        Call it inside the `transaction()` that inserts the row: the mutex
        and the write lock keep another writer from taking the same id.
        """
        if table not in ID_TABLES:
            raise CatalogError(f"{table!r} has no integer id that a writer assigns")
        return int(self.db.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}").fetchone()[0])


def _serialised(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return method(self, *args, **kwargs)

    return locked


def _public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    """Every public method of `cls` and its bases, the most derived definition of each."""
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if callable(value) and not name.startswith("_") and not isinstance(value, type):
                found[name] = value
    return found


# Every public method runs under the catalog's mutex (see `transaction`).
for _name, _method in _public_methods(Catalog).items():
    if _name != "transaction":
        setattr(Catalog, _name, _serialised(_method))
