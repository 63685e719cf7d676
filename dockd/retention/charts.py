"""What the compliance report's charts show, pure: counted beside the report's own pass.

`ChartsCounter.watch` sees each compliance row on its way into
`compliance_report` (one pass over the catalog's cursor, nothing held per
recording), and `charts()` returns the frozen values that report_html.py
draws:

- on time vs late, per group (unit, officer or device: the report's `by`)
  per ISO week of the recording's start, for the last WEEKS_SHOWN weeks of
  the period; what lies before them is counted per group (`earlier_*`), so
  that the bars plus the earlier counts are the report's on_time and late;
- recordings and bytes by retention tier (live, and deleted);
- storage used at the end of each shown week, by tier: the bytes of the
  period's recordings ingested by then and not deleted by then;
- retention deletions coming in the next 30 and 90 days (live recordings
  whose expiry falls in the window and that nothing protects: the
  Service's `upcoming`), by tier.

Interruptions per group and the overdue devices are the report's own values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from dockd.clock import parse_utc
from dockd.retention.policy import TIERS
from dockd.retention.report import NONE_LABEL, group_of

WEEKS_SHOWN = 26
DELETION_WINDOWS = (30, 90)


def monday(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())


def _moment(value: datetime | str) -> datetime:
    return value if isinstance(value, datetime) else parse_utc(value)


_MONDAYS: dict[str, date] = {}


def _monday_of(value: datetime | str) -> date:
    """monday() of a stored time. The catalog's times are UTC ("…Z", clock.isoformat_utc),
    so their first ten characters are the UTC day: a million rows cost a few thousand
    date parses, not a million time parses."""
    if isinstance(value, str) and value.endswith("Z") and len(value) >= 20:
        day = value[:10]
        found = _MONDAYS.get(day)
        if found is None:
            found = _MONDAYS[day] = monday(_moment(value))
            if len(_MONDAYS) > 100_000:  # centuries of days: never in practice
                _MONDAYS.clear()
        return found
    return monday(_moment(value))


@dataclass(frozen=True)
class GroupWeeks:
    group: str
    on_time: tuple[int, ...]  # one per shown week
    late: tuple[int, ...]
    earlier_on_time: int  # before the first shown week
    earlier_late: int


@dataclass(frozen=True)
class TierCount:
    tier: str
    live: int
    live_bytes: int
    deleted: int


@dataclass(frozen=True)
class Deletions:
    days: int
    by_tier: tuple[tuple[str, int, int], ...]  # (tier, recordings, bytes)

    @property
    def recordings(self) -> int:
        return sum(n for _, n, _ in self.by_tier)

    @property
    def bytes(self) -> int:
        return sum(b for _, _, b in self.by_tier)


@dataclass(frozen=True)
class ReportCharts:
    weeks: tuple[date, ...]  # the Monday of each shown week
    late_by_week: tuple[GroupWeeks, ...]
    tiers: tuple[TierCount, ...]
    # Per tier, the bytes stored at the end of each shown week.
    storage: tuple[tuple[str, tuple[int, ...]], ...]
    deletions: tuple[Deletions, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "weeks": [w.isoformat() for w in self.weeks],
            "late_by_week": [
                {
                    "group": g.group, "on_time": list(g.on_time), "late": list(g.late),
                    "earlier_on_time": g.earlier_on_time, "earlier_late": g.earlier_late,
                }
                for g in self.late_by_week
            ],
            "tiers": [
                {"tier": t.tier, "live": t.live, "live_bytes": t.live_bytes, "deleted": t.deleted}
                for t in self.tiers
            ],
            "storage": {tier: list(values) for tier, values in self.storage},
            "deletions": [
                {"days": d.days, "by_tier": [list(row) for row in d.by_tier]}
                for d in self.deletions
            ],
        }  # fmt: skip


def _tier_order(tier: str) -> tuple[int, str]:
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), tier)


class ChartsCounter:
    """Counts, per row, what the charts need; a few counters per group, tier and week."""

    def __init__(self, by: str, as_of: datetime, end: datetime | None = None) -> None:
        self.by = by
        last = min(end - timedelta(microseconds=1), as_of) if end else as_of
        self.last_week = monday(last)
        self._weekly: dict[str, Counter[tuple[date, bool]]] = {}
        self._tiers: dict[str, Counter[str]] = {}
        self._stored: Counter[tuple[str, date]] = Counter()  # bytes in (+) and out (-)
        self._first: date | None = None

    def watch(self, rows: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
        for row in rows:
            self._count(row)
            yield row

    def _count(self, row: Mapping[str, Any]) -> None:
        week = _monday_of(row["recorded_start"])
        weekly = self._weekly.setdefault(group_of(row, self.by), Counter())
        weekly[(week, bool(row.get("late")))] += 1
        tier = str(row.get("tier") or NONE_LABEL)
        size = int(row.get("size") or 0)
        tiers = self._tiers.setdefault(tier, Counter())
        came = _monday_of(row["ingested_at"])
        self._first = min(self._first or came, came, week)
        self._stored[(tier, came)] += size
        if row.get("retention_state") == "deleted":
            tiers["deleted"] += 1
            if row.get("deleted_at"):
                self._stored[(tier, _monday_of(row["deleted_at"]))] -= size
        else:
            tiers["live"] += 1
            tiers["live_bytes"] += size

    def _shown_weeks(self) -> tuple[date, ...]:
        first = max(
            self._first or self.last_week, self.last_week - timedelta(weeks=WEEKS_SHOWN - 1)
        )
        count = (self.last_week - first).days // 7 + 1
        return tuple(first + timedelta(weeks=k) for k in range(max(count, 1)))

    def charts(self, upcoming: Mapping[int, Sequence[tuple[str | None, int]]]) -> ReportCharts:
        """The chart values; `upcoming[days]` is (tier, size) of each live recording due
        for deletion within `days` (Service.upcoming)."""
        weeks = self._shown_weeks()
        first = weeks[0]
        groups = []
        for group in sorted(self._weekly, key=lambda g: (g == NONE_LABEL, g)):
            c = self._weekly[group]
            early = [(w, late, n) for (w, late), n in c.items() if w < first]
            groups.append(
                GroupWeeks(
                    group,
                    tuple(c[(w, False)] for w in weeks),
                    tuple(c[(w, True)] for w in weeks),
                    sum(n for _, late, n in early if not late),
                    sum(n for _, late, n in early if late),
                )
            )
        tiers = tuple(
            TierCount(t, c["live"], c["live_bytes"], c["deleted"])
            for t, c in sorted(self._tiers.items(), key=lambda kv: _tier_order(kv[0]))
        )
        storage = []
        for tier in (t.tier for t in tiers):
            deltas = sorted((w, n) for (t, w), n in self._stored.items() if t == tier)
            values, total, k = [], 0, 0
            for week in weeks:
                while k < len(deltas) and deltas[k][0] <= week:
                    total += deltas[k][1]
                    k += 1
                values.append(total)
            storage.append((tier, tuple(values)))
        deletions = []
        for days in sorted(upcoming):
            counts: dict[str, list[int]] = {}
            for kind, size in upcoming[days]:
                slot = counts.setdefault(kind or NONE_LABEL, [0, 0])
                slot[0] += 1
                slot[1] += size
            ordered = sorted(counts.items(), key=lambda kv: _tier_order(kv[0]))
            deletions.append(Deletions(days, tuple((t, n, b) for t, (n, b) in ordered)))
        return ReportCharts(weeks, tuple(groups), tiers, tuple(storage), tuple(deletions))
