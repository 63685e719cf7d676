"""How long-running work tells a front how far it got, without knowing the front.

The core (the copy engine, `verify`, `audit`, the disc checks) reports to a
`Meter`; the CLI draws a rich bar from it on a terminal, and anything else
gets `NULL_METER`, which does nothing. The core calls `advance` once per
chunk it hashes (1 MiB by default), never more, so a meter must be cheap
and must leave screen refreshing to its own timer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

# `n` more bytes (or entries) done; negative when work is started over.
Advance = Callable[[int], None]


class Meter(Protocol):
    def stage(self, name: str, total: int | None, unit: str = "bytes") -> None:
        """A new stage of the work begins: `total` units to do (None: not known)."""

    def advance(self, n: int) -> None:
        """`n` more units of the current stage are done."""


class _NullMeter:
    def stage(self, name: str, total: int | None, unit: str = "bytes") -> None:
        pass

    def advance(self, n: int) -> None:
        pass


NULL_METER: Meter = _NullMeter()


def size_text(n: float) -> str:
    """Bytes as people read them: 1.5 GiB (the CLI, doctor and the reports alike)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover
