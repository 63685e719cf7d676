"""The retention policy (R4), pure: docs/FORMAT.md "Retention".

Examples pin the calendar arithmetic and the tier table; hypothesis checks
the properties the issue asks for: nothing that adds protection (a
category, a hold, an open case, a later keep_until) ever shortens
retention or makes a recording deletable, and a decision depends only on
the set of categories.
"""

from __future__ import annotations

import calendar
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockd.errors import ConfigError
from dockd.retention.policy import (
    CATEGORIES,
    LONG_TERM,
    PRESETS,
    TIERS,
    Decision,
    Facts,
    Policy,
    add_months,
    ceil_second,
    check_categories,
    decide,
    expiry,
    floor_second,
    longer,
    tier_for,
)

# 2000-01-01 .. 2199-12-31: the whole range a dock will ever see, leap years included.
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC)
)
month_counts = st.integers(min_value=0, max_value=240)
category_sets = st.frozensets(st.sampled_from(sorted(CATEGORIES)))
policies = st.builds(Policy, st.sampled_from(sorted(PRESETS)), st.integers(0, 60))


@st.composite
def facts(draw: st.DrawFn) -> Facts:
    end = draw(moments)
    keep = draw(
        st.none() | st.builds(lambda d: end + d, st.timedeltas(timedelta(0), timedelta(days=4000)))
    )
    return Facts(end, draw(category_sets), draw(st.booleans()), draw(st.booleans()), keep)


def clamped_add_months(moment: datetime, months: int) -> datetime:
    """The naive month add: a day the target month lacks is clamped to its last day."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(
        year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1])
    )


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# -- add_months ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (utc(2026, 8, 31, 10, 30), 6, utc(2027, 3, 1, 10, 30)),  # Feb has 28 days: 1 Mar
        (utc(2027, 8, 31, 10, 30), 6, utc(2028, 3, 1, 10, 30)),  # leap Feb has 29: still 1 Mar
        (utc(2027, 8, 29, 23, 59, 59), 6, utc(2028, 2, 29, 23, 59, 59)),  # 29 Feb exists
        (utc(2028, 2, 29, 12), 12, utc(2029, 3, 1, 12)),  # 29 Feb + a year: 1 Mar
        (utc(2028, 2, 29, 12), 24, utc(2030, 3, 1, 12)),
        (utc(2028, 2, 29, 12), 48, utc(2032, 2, 29, 12)),  # leap to leap
        (utc(2026, 12, 31), 6, utc(2027, 7, 1)),  # 30 June: 1 July
        (utc(2026, 5, 31), 6, utc(2026, 12, 1)),  # 30 Nov: 1 Dec
        (utc(2026, 6, 30), 6, utc(2026, 12, 30)),
        (utc(2026, 7, 31), 24, utc(2028, 7, 31)),
        (utc(2026, 11, 25, 9), 24, utc(2028, 11, 25, 9)),
        (utc(2026, 12, 15), 1, utc(2027, 1, 15)),  # across the year end
        (utc(2027, 1, 31), 1, utc(2027, 3, 1)),
        (utc(2026, 3, 5), 0, utc(2026, 3, 5)),
    ],
)
def test_add_months_examples(start: datetime, months: int, expected: datetime) -> None:
    assert add_months(start, months) == expected


@given(moments, month_counts)
def test_add_months_is_never_shorter_than_the_calendar(moment: datetime, months: int) -> None:
    result = add_months(moment, months)
    naive = clamped_add_months(moment, months)
    # Same day of the month when it exists, otherwise the 1st of the next month.
    assert result in (naive, naive + timedelta(days=1))
    assert result >= naive
    assert result.time() == moment.time() and result.tzinfo == moment.tzinfo
    if moment.day <= calendar.monthrange(naive.year, naive.month)[1]:
        assert result == naive
    else:
        assert (result.day, result - naive) == (1, timedelta(days=1))
    if months:
        assert result > moment
        # No run of `months` calendar months is shorter than 28 days each.
        assert result - moment >= timedelta(days=28 * months)
    else:
        assert result == moment


@given(moments, moments, st.sampled_from([6, 24]))
def test_add_months_is_monotonic(a: datetime, b: datetime, months: int) -> None:
    if a <= b:
        assert add_months(a, months) <= add_months(b, months)
    else:
        assert add_months(a, months) >= add_months(b, months)


@given(moments)
def test_six_and_twenty_four_months_meet_the_legal_minimums(moment: datetime) -> None:
    # Six consecutive months hold at least 181 days, 24 at least 730.
    assert add_months(moment, 6) - moment >= timedelta(days=181)
    assert add_months(moment, 24) - moment >= timedelta(days=730)


ZONES = [
    ZoneInfo(name)
    for name in ("UTC", "Asia/Shanghai", "Pacific/Kiritimati", "Etc/GMT+12", "America/New_York")
]


# -- expiry -------------------------------------------------------------------------


# Mid-month, every calendar gives the same day: the end + months, + 1 hour for
# summer time (policy.expiry), rounded up to the second.
def test_expiry_rounds_up_to_the_second() -> None:
    end = utc(2026, 11, 25, 9, 0, 0) + timedelta(microseconds=1)
    assert expiry("6m", end) == utc(2027, 5, 25, 10, 0, 1)
    assert expiry("2y", end.replace(microsecond=0)) == utc(2028, 11, 25, 10, 0, 0)
    # 31 August 23:59 UTC is already 1 September east of Greenwich: the latest
    # calendar (UTC-12, still 31 August) rolls to 1 September + 2 years.
    assert expiry("2y", utc(2026, 8, 31, 23, 59, 59) + timedelta(microseconds=999_999)) == utc(
        2028, 9, 1, 1, 0, 0
    )
    assert expiry("permanent", end) is None
    assert expiry("permanent", end, keep_until=utc(2040, 1, 1)) is None


def test_expiry_in_another_zone_is_the_same_instant() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    end = utc(2026, 11, 25, 1, 2, 3)
    assert expiry("6m", end.astimezone(shanghai)) == expiry("6m", end)
    assert expiry("6m", end) == utc(2027, 5, 25, 2, 2, 3)


def test_keep_until_only_ever_lengthens() -> None:
    end = utc(2026, 11, 25, 9)
    assert expiry("6m", end, keep_until=utc(2027, 1, 1)) == utc(2027, 5, 25, 10)
    assert expiry("6m", end, keep_until=utc(2027, 7, 1, 0, 0, 0, 5)) == utc(2027, 7, 1, 0, 0, 1)


@given(moments, st.sampled_from(["6m", "2y"]), st.none() | moments)
def test_expiry_properties(end: datetime, tier: str, keep: datetime | None) -> None:
    months = {"6m": 6, "2y": 24}[tier]
    result = expiry(tier, end, keep)  # type: ignore[arg-type]
    assert result is not None
    assert result.microsecond == 0 and result.tzinfo == UTC
    # Never shorter on any calendar in use (UTC-12 … UTC+14) …
    local = max(add_months(end.astimezone(zone), months) for zone in ZONES)
    floor = local if keep is None else max(local, keep)
    assert result >= floor and result >= clamped_add_months(end, months)
    # … and not longer than the latest calendar's day + summer time + rounding.
    ceiling = add_months(end, months) + timedelta(days=3, hours=1, seconds=1)
    assert result <= (ceiling if keep is None else max(ceiling, keep + timedelta(seconds=1)))


@given(moments)
def test_ceil_and_floor_second(moment: datetime) -> None:
    up, down = ceil_second(moment), floor_second(moment)
    assert up.microsecond == down.microsecond == 0
    assert down <= moment <= up and up - down <= timedelta(seconds=1)
    assert (up == down) == (moment.microsecond == 0)


def test_six_months_are_never_shorter_on_the_local_calendar() -> None:
    """The regulations count months on the calendar of the dock's country.

    A recording that ended 1 March 2027 04:00 in Shanghai (28 February
    20:00 UTC) must be kept until at least 1 September 04:00 there.
    """
    shanghai = ZoneInfo("Asia/Shanghai")
    end = datetime(2027, 3, 1, 4, 0, tzinfo=shanghai)
    local_six_months = add_months(end, 6)
    assert local_six_months == datetime(2027, 9, 1, 4, 0, tzinfo=shanghai)
    result = expiry("6m", end)
    assert result is not None and result >= local_six_months


# -- the tier table -------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("category", sorted(LONG_TERM))
def test_every_long_term_category_is_permanent(preset: str, category: str) -> None:
    policy = Policy(preset)
    assert tier_for(frozenset({category}), policy) == "permanent"
    assert tier_for(frozenset({category, "routine"}), policy) == "permanent"
    decision = decide(Facts(utc(2026, 11, 25), frozenset({category})), policy)
    assert (decision.tier, decision.expires_at) == ("permanent", None)
    assert not decision.expired(utc(2999, 1, 1)) and not decision.deletable(utc(2999, 1, 1))


@pytest.mark.parametrize(
    ("preset", "tier", "expires"),
    [
        ("daily_enforcement", "2y", utc(2028, 11, 25, 10)),
        ("minimum", "6m", utc(2027, 5, 25, 10)),
    ],
)
@pytest.mark.parametrize("categories", [frozenset(), frozenset({"routine"})])
def test_routine_footage_gets_the_presets_tier(
    preset: str, tier: str, expires: datetime, categories: frozenset[str]
) -> None:
    policy = Policy(preset)
    assert policy.routine_tier == tier
    assert policy.version == f"r1/{preset}"
    assert tier_for(categories, policy) == tier
    decision = decide(Facts(utc(2026, 11, 25, 9), categories), policy)
    assert decision == Decision(tier, expires, ())
    assert not decision.expired(expires - timedelta(microseconds=1))
    assert decision.expired(expires) and decision.deletable(expires)


def test_long_term_and_categories_are_as_documented() -> None:
    assert {"evidence", "review", "obstruction", "incident", "major_case"} == LONG_TERM
    assert LONG_TERM | {"routine"} == CATEGORIES
    assert Policy().preset == "daily_enforcement" and Policy().grace_days == 7


def test_unknown_preset_and_category_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'forever'"):
        Policy("forever")
    with pytest.raises(ConfigError, match="unknown category bogus"):
        check_categories(["evidence", "bogus"])
    with pytest.raises(ConfigError, match="unknown categories a, b"):
        check_categories(["b", "a"])
    assert check_categories(["evidence", "evidence", "routine"]) == {"evidence", "routine"}


def test_longer_orders_the_tiers() -> None:
    assert [t for t in TIERS] == ["6m", "2y", "permanent"]
    for i, a in enumerate(TIERS):
        for j, b in enumerate(TIERS):
            assert longer(a, b) == (i > j)


def test_protection_is_reported_in_a_fixed_order() -> None:
    end = utc(2020, 1, 1)
    assert decide(Facts(end, held=True, open_case=True), Policy()).protected_by == (
        "hold",
        "open_case",
    )
    assert decide(Facts(end, open_case=True), Policy()).protected_by == ("open_case",)
    assert decide(Facts(end), Policy()).protected_by == ()


# -- properties ---------------------------------------------------------------------------


def _not_shorter(before: Decision, after: Decision) -> bool:
    """`after` keeps at least as long as `before`."""
    if after.expires_at is None:
        return True
    return before.expires_at is not None and after.expires_at >= before.expires_at


def _check_never_shorter(
    before: Facts, after: Facts, policy: Policy, probes: list[datetime]
) -> None:
    a, b = decide(before, policy), decide(after, policy)
    assert _not_shorter(a, b), (a, b)
    assert a.tier == b.tier or longer(b.tier, a.tier)
    for moment in probes:
        if not a.deletable(moment):
            assert not b.deletable(moment), (moment, a, b)
        if not a.expired(moment):
            assert not b.expired(moment), (moment, a, b)


def _probes(f: Facts, extra: datetime) -> list[datetime]:
    """Instants worth asking about: around each possible expiry, and `extra`."""
    points = [extra, f.recorded_end]
    for months in (6, 24):
        point = ceil_second(add_months(f.recorded_end, months))
        points += [point - timedelta(seconds=1), point, point + timedelta(days=1)]
    if f.keep_until is not None:
        points += [f.keep_until, ceil_second(f.keep_until) + timedelta(seconds=1)]
    return points


@settings(max_examples=150)
@given(facts(), st.sampled_from(sorted(CATEGORIES)), policies, moments)
def test_adding_a_category_never_shortens(
    f: Facts, category: str, policy: Policy, probe: datetime
) -> None:
    more = Facts(f.recorded_end, f.categories | {category}, f.open_case, f.held, f.keep_until)
    _check_never_shorter(f, more, policy, _probes(f, probe))


@settings(max_examples=150)
@given(facts(), policies, moments, st.sampled_from(["hold", "open_case"]))
def test_a_hold_or_open_case_never_shortens_and_always_protects(
    f: Facts, policy: Policy, probe: datetime, what: str
) -> None:
    more = Facts(
        f.recorded_end,
        f.categories,
        open_case=f.open_case or what == "open_case",
        held=f.held or what == "hold",
        keep_until=f.keep_until,
    )
    _check_never_shorter(f, more, policy, _probes(f, probe))
    decision = decide(more, policy)
    assert what in decision.protected_by
    for moment in [*_probes(f, probe), utc(9999, 12, 31)]:
        assert not decision.deletable(moment)


@settings(max_examples=150)
@given(facts(), policies, moments, st.timedeltas(timedelta(0), timedelta(days=5000)))
def test_a_later_keep_until_never_shortens(
    f: Facts, policy: Policy, probe: datetime, later: timedelta
) -> None:
    base = f.keep_until or f.recorded_end
    more = Facts(f.recorded_end, f.categories, f.open_case, f.held, base + later)
    _check_never_shorter(f, more, policy, _probes(f, probe))


@settings(max_examples=100)
@given(facts(), moments)
def test_minimum_preset_never_outlasts_daily_enforcement(f: Facts, probe: datetime) -> None:
    """Switching to the two-year preset never shortens anything."""
    short, long_ = decide(f, Policy("minimum")), decide(f, Policy("daily_enforcement"))
    assert _not_shorter(short, long_)
    for moment in _probes(f, probe):
        assert not (long_.deletable(moment) and not short.deletable(moment))


@given(facts(), policies)
def test_expiry_is_never_below_the_legal_minimum(f: Facts, policy: Policy) -> None:
    decision = decide(f, policy)
    if decision.expires_at is None:
        assert f.categories & LONG_TERM
        return
    months = {"6m": 6, "2y": 24}[decision.tier]
    assert decision.expires_at >= add_months(f.recorded_end, months)
    assert decision.expires_at >= add_months(f.recorded_end, 6)
    if f.keep_until is not None:
        assert decision.expires_at >= f.keep_until
    assert bool(decision.protected_by) == (f.held or f.open_case)


@given(
    st.lists(st.sampled_from(sorted(CATEGORIES)), max_size=12),
    st.randoms(use_true_random=False),
    moments,
    policies,
    st.booleans(),
    st.booleans(),
)
def test_decide_depends_only_on_the_set_of_categories(
    events: list[str],
    rng: random.Random,
    end: datetime,
    policy: Policy,
    held: bool,
    open_case: bool,
) -> None:
    """Categories tagged in any order, any number of times, decide the same."""
    shuffled = [*events, *rng.sample(events, len(events) // 2)]
    rng.shuffle(shuffled)
    first = decide(Facts(end, check_categories(events), open_case, held), policy)
    second = decide(Facts(end, check_categories(shuffled), open_case, held), policy)
    assert first == second
    assert first.tier == ("permanent" if set(events) & LONG_TERM else policy.routine_tier)
