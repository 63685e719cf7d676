"""Retention policy (R4), pure: a recording's facts and the policy in, its tier and expiry out.

002_f200e2d1272770f4.txt Art. 19: footage is kept at least 6 months, and
for ever when it is used as evidence, under review, litigation or
complaint, when officers were obstructed or attacked, for incidents, and
for major or complex cases. 000_ab9aad93109ba32b.txt Art. 20: daily
enforcement footage at least two years. 004_2fb3dba4410dc436.txt Art. 15
lists the same long-term cases. docs/FORMAT.md "Retention" is the contract.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from dockd.errors import ConfigError

Tier = Literal["6m", "2y", "permanent"]
TIERS: tuple[Tier, ...] = ("6m", "2y", "permanent")
TIER_MONTHS: dict[str, int] = {"6m": 6, "2y": 24}

LONG_TERM = frozenset({"evidence", "review", "obstruction", "incident", "major_case"})
CATEGORIES = LONG_TERM | {"routine"}
CATEGORY_HELP = {
    "evidence": "used as evidence",
    "review": "administrative review, litigation or complaint",
    "obstruction": "obstruction of or violence against officers",
    "incident": "mass or emergency incidents",
    "major_case": "major or complex cases",
    "routine": "routine footage (the preset's tier)",
}
PRESETS: dict[str, Tier] = {"minimum": "6m", "daily_enforcement": "2y"}
# Bumped when the rules below change meaning; part of every policy version.
RULES_VERSION = "r1"


@dataclass(frozen=True)
class Policy:
    preset: str = "daily_enforcement"
    grace_days: int = 7

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(
                f"retention.preset: unknown preset {self.preset!r} (known: {', '.join(PRESETS)})"
            )

    @property
    def routine_tier(self) -> Tier:
        return PRESETS[self.preset]

    @property
    def version(self) -> str:
        return f"{RULES_VERSION}/{self.preset}"


@dataclass(frozen=True)
class Facts:
    """What the policy needs to know about one recording."""

    recorded_end: datetime
    categories: frozenset[str] = frozenset()
    open_case: bool = False
    held: bool = False
    keep_until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    tier: Tier
    # None: kept for ever (permanent tier).
    expires_at: datetime | None
    # Why it may not be deleted now whatever its expiry: "hold", "open_case".
    protected_by: tuple[str, ...]

    def expired(self, as_of: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= as_of

    def deletable(self, as_of: datetime) -> bool:
        return self.expired(as_of) and not self.protected_by


def check_categories(categories: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(categories)
    unknown = chosen - CATEGORIES
    if unknown:
        raise ConfigError(
            f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(CATEGORIES))})"
        )
    return chosen


def tier_for(categories: frozenset[str], policy: Policy) -> Tier:
    """The longest tier any category asks for; no category is routine footage."""
    return "permanent" if categories & LONG_TERM else policy.routine_tier


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus calendar months; a day the target month lacks rolls to the next 1st.

    31 August + 6 months is 1 March, not 28 February: "at least six
    months" must never come out shorter.
    """
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    if moment.day <= last:
        return moment.replace(year=year, month=month)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return moment.replace(year=year, month=month, day=1)


def ceil_second(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def floor_second(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


# Local calendars run from UTC-12 to UTC+14: the calendar date of an instant
# is the UTC date, the day before or the day after. Counting months from
# each and keeping the latest is "never shorter" wherever the dock stands,
# without making expiry depend on a configurable zone (which `dockd verify`
# would then need to know). One hour more covers a summer-time shift.
_CALENDAR_OFFSETS = (timedelta(hours=-12), timedelta(0), timedelta(hours=14))
_SUMMER_TIME = timedelta(hours=1)


def expiry(
    tier: Tier, recorded_end: datetime, keep_until: datetime | None = None
) -> datetime | None:
    """End + the tier's calendar months, on the calendar that makes it latest; None: never."""
    if tier == "permanent":
        return None
    months = TIER_MONTHS[tier]
    start = recorded_end.astimezone(UTC)
    end = max(add_months(start + off, months) - off for off in _CALENDAR_OFFSETS) + _SUMMER_TIME
    if keep_until is not None:
        end = max(end, keep_until)
    return ceil_second(end)


def decide(facts: Facts, policy: Policy) -> Decision:
    tier = tier_for(facts.categories, policy)
    protected = tuple(
        name for name, on in (("hold", facts.held), ("open_case", facts.open_case)) if on
    )
    return Decision(tier, expiry(tier, facts.recorded_end, facts.keep_until), protected)


def longer(a: Tier, b: Tier) -> bool:
    """True when tier `a` keeps footage longer than tier `b`."""
    return TIERS.index(a) > TIERS.index(b)
