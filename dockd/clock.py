"""The injected clock: nothing below the fronts reads the system time itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from dockd.errors import UsageError


class Clock(Protocol):
    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock for tests: stands still until moved."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def isoformat_utc(moment: datetime) -> str:
    """Render an aware datetime as `YYYY-MM-DDThh:mm:ss[.ffffff]Z` in UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every stored time must be aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def parse_time(value: object, field: str) -> datetime:
    """The one rule for a time a person types or a request carries, everywhere:
    ISO 8601 (`2026-11-25T09:00:00Z`, `…+08:00`), a space instead of the `T`,
    or a date (its midnight). A time without an offset is UTC, never the
    host's local time (README.md "Times"); anything else is refused naming `field`.
    """
    text = value.strip().replace(" ", "T", 1) if isinstance(value, str) else ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{field}: not a time: {value!r} (use e.g. 2026-11-25T09:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
