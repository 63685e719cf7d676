"""The installed dockd.service as systemd reads it: the unit and its drop-ins."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

UNIT_NAME = "dockd.service"
# Where systemd looks, most specific first (relative to `root`).
UNIT_DIRS = ("etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system")


def first_existing(root: Path, dirs: Sequence[str], name: str) -> Path | None:
    for folder in dirs:
        candidate = root / folder / name
        if candidate.exists():
            return candidate
    return None


def unit_settings(root: Path) -> dict[str, list[str]] | None:
    """Every assignment of the unit and its drop-ins (`dockd.service.d/*.conf` of each
    unit folder, by file name), in systemd's reading order; None without a unit."""
    unit = first_existing(root, UNIT_DIRS, UNIT_NAME)
    if unit is None:
        return None
    drop_ins = sorted(
        (p for d in UNIT_DIRS for p in (root / d / f"{UNIT_NAME}.d").glob("*.conf")),
        key=lambda p: p.name,
    )
    found: dict[str, list[str]] = {}
    for path in [unit, *drop_ins]:
        for line in path.read_text("utf-8", errors="replace").splitlines():
            name, eq, value = line.strip().partition("=")
            if eq and not name.startswith(("#", ";")):
                found.setdefault(name.strip(), []).append(value.strip())
    return found
