"""The catalog: recordings, sessions and the evidence log in one SQLite file.

- `schema`: tables, triggers, MIGRATIONS and SCHEMA_VERSION;
- `repository`: `Catalog`, composed of one mixin per table family:
  `ledger` (log, Merkle nodes, checkpoints, signing keys), `recordings`
  (sessions, recordings, devices, assignments, fixity, search), `labels`
  (cases, links, holds, gap explanations), `retention` (the retention
  columns and what the plan reads), `exports` (exports, discs, disc_items).

The values it returns that other packages use (`Recording`,
`RecordingFilter`) live in `dockd.model` and are re-exported here. Only the
service calls the writing methods, inside `transaction()`.
"""

from dockd.catalog.repository import ID_TABLES, Catalog
from dockd.catalog.retention import RETENTION_COLUMNS
from dockd.catalog.schema import MIGRATIONS, SCHEMA_VERSION
from dockd.model import Recording, RecordingFilter

__all__ = [
    "ID_TABLES",
    "MIGRATIONS",
    "RETENTION_COLUMNS",
    "SCHEMA_VERSION",
    "Catalog",
    "Recording",
    "RecordingFilter",
]
