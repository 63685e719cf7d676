"""What every table family of the catalog stands on: the connection, and JSON columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlite_utils


class Tables:
    """The base of the catalog's table families (mixins composed into `Catalog`)."""

    path: Path
    db: sqlite_utils.Database


def json_lists(values: dict[str, Any], *names: str) -> dict[str, Any]:
    return {
        k: json.dumps(list(v), ensure_ascii=False) if k in names else v for k, v in values.items()
    }


def decoded(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: json.loads(v) if k in names else v for k, v in row.items()}
