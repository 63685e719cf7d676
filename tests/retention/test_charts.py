"""The compliance charts' figures, pure (fixed dates: values in, values out)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dockd.clock import isoformat_utc
from dockd.retention.charts import WEEKS_SHOWN, ChartsCounter, _monday_of, monday

AS_OF = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # a Wednesday


def _row(n: int, unit: str | None, start: datetime, *, late: bool = False, tier: str = "6m",
         size: int = 100, ingested: datetime | None = None,
         deleted: datetime | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "id": n, "unit": unit, "officer": None, "device_serial": "DSJ0001",
        "recorded_start": isoformat_utc(start), "recorded_end": isoformat_utc(start),
        "ingested_at": isoformat_utc(ingested or start + timedelta(hours=1)), "late": late,
        "tier": tier, "size": size, "retention_state": "deleted" if deleted else "live",
        "deleted_at": isoformat_utc(deleted) if deleted else None,
    }  # fmt: skip


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)))  # fmt: skip
def test_the_monday_of_a_stored_time_is_its_utc_weeks(moment: datetime) -> None:
    assert _monday_of(isoformat_utc(moment)) == monday(moment)
    assert _monday_of(moment) == monday(moment)
    assert monday(moment).weekday() == 0 and 0 <= (moment.date() - monday(moment)).days < 7


def test_weeks_tiers_storage_and_deletions() -> None:
    counter = ChartsCounter("unit", AS_OF)
    rows = [
        _row(1, "一中队", AS_OF - timedelta(days=1)),
        _row(2, "一中队", AS_OF - timedelta(days=8), late=True),
        _row(3, " ", AS_OF - timedelta(days=2), tier="permanent", size=50),  # blank: (none)
        # Before the weeks shown: counted as "earlier"; ingested then, deleted last week.
        _row(4, "一中队", AS_OF - timedelta(weeks=40), size=30, deleted=AS_OF - timedelta(days=9)),
    ]
    assert list(counter.watch(rows)) == rows  # passed through untouched
    charts = counter.charts({30: [("6m", 10)], 90: [("6m", 10), ("permanent", 5)]})
    assert len(charts.weeks) == WEEKS_SHOWN and charts.weeks[-1] == date(2026, 11, 30)
    by_group = {g.group: g for g in charts.late_by_week}
    first = by_group["一中队"]
    assert (first.on_time[-1], first.late[-2], first.earlier_on_time) == (1, 1, 1)
    assert sum(first.on_time) + first.earlier_on_time == 2 and sum(first.late) == 1
    assert sum(by_group["(none)"].on_time) == 1
    assert [(t.tier, t.live, t.live_bytes, t.deleted) for t in charts.tiers] == [
        ("6m", 2, 200, 1), ("permanent", 1, 50, 0),
    ]  # fmt: skip
    storage = dict(charts.storage)
    # The deleted row's 30 bytes count until the week it was deleted in.
    assert storage["6m"][0] == 30 and storage["6m"][-1] == 200
    assert storage["permanent"][-1] == 50
    assert [(d.days, d.recordings, d.bytes) for d in charts.deletions] == [(30, 1, 10), (90, 2, 15)]
