"""The bucket's layout and lock dates, pure (injected dates, fixed)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockd.errors import UsageError
from dockd.replicate.keys import (
    PERMANENT_HORIZON,
    backoff,
    checkpoint_key,
    log_segment_key,
    needs_extension,
    object_key,
    retain_until,
)

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SHA = "ab" + "0" * 62


def test_keys_under_the_docks_prefix() -> None:
    assert object_key("dockd/3d1219c7c4c5", SHA) == f"dockd/3d1219c7c4c5/objects/sha256/ab/{SHA}"
    assert log_segment_key("p", 1, 250) == "p/log/000000000001-000000000250.jsonl"
    assert checkpoint_key("/p/", 42) == "p/checkpoints/000000000042.txt"
    for bad in ("", "/", "a//b", "a/../b"):
        with pytest.raises(UsageError, match=r"replicate\.prefix"):
            object_key(bad, SHA)
    with pytest.raises(ValueError):
        object_key("p", "AB" * 32)
    with pytest.raises(ValueError):
        log_segment_key("p", 5, 4)


def test_the_lock_follows_the_tier_and_only_grows() -> None:
    expires = datetime(2028, 11, 25, 2, 0, 0, 500, tzinfo=UTC)
    assert retain_until("2y", expires, NOW) == datetime(2028, 11, 25, 2, 0, 1, tzinfo=UTC)
    assert retain_until("permanent", None, NOW) == NOW + PERMANENT_HORIZON
    later = expires + timedelta(days=400)
    assert retain_until("6m", expires - timedelta(days=500), NOW, current=later) == later
    assert needs_extension("2y", later, NOW, current=expires)
    assert not needs_extension("2y", expires, NOW, current=later)
    assert needs_extension("permanent", None, NOW, current=NOW + timedelta(days=30))
    assert not needs_extension("permanent", None, NOW, current=NOW + PERMANENT_HORIZON)
    # A 2-year lock whose recording became permanent (a tag, a hold): pushed out at once.
    assert needs_extension("permanent", None, NOW, current=NOW + timedelta(days=2 * 365))
    # Renewed about yearly: not while more than horizon - one year is left.
    assert not needs_extension("permanent", None, NOW, current=NOW + timedelta(days=9 * 366 + 1))


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
    st.sampled_from(["6m", "2y", "permanent", None]),
)
def test_never_shorter_than_what_the_bucket_holds(
    current: datetime, expires: datetime | None, tier: str | None
) -> None:
    assert retain_until(tier, expires, NOW, current=current) >= current


@given(st.integers(min_value=1, max_value=200))
def test_backoff_stays_within_its_ceiling(attempt: int) -> None:
    rng = random.Random(attempt)
    wait = backoff(attempt, base_s=5, cap_s=600, rng=rng)
    assert 0 <= wait <= min(600, 5 * 2 ** (attempt - 1))
    assert backoff(0) == 0
