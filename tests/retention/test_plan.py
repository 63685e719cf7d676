"""The sweep's plan, pure (dockd/retention/plan.py): candidates and a time in, a plan out.

Hypothesis draws candidate sets with shared objects, protections, both
states and times around the boundaries, and checks what the sweep may
never do: touch a protected or unexpired recording, delete a live one or
one still in its grace period, or remove an object another recording
still uses; and that the plan depends on nothing but its inputs.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dockd.retention.plan import Candidate, Plan, plan

AS_OF = datetime(2030, 6, 15, 12, 0, 0, tzinfo=UTC)
SHAS = [f"{i:02x}" * 32 for i in range(5)]
PROTECTIONS: list[tuple[str, ...]] = [(), (), ("hold",), ("open_case",), ("hold", "open_case")]
EXACT = [timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1), timedelta(seconds=1)]


def offsets(days: int) -> st.SearchStrategy[timedelta]:
    """Anywhere within +-days, with the instants right at the boundary drawn often."""
    return st.one_of(
        st.sampled_from(EXACT), st.timedeltas(timedelta(days=-days), timedelta(days=days))
    )


@st.composite
def candidate_sets(draw: st.DrawFn) -> tuple[list[Candidate], dict[str, int], int]:
    grace = draw(st.integers(0, 14))
    ids = draw(st.lists(st.integers(1, 100_000), max_size=16, unique=True))
    candidates = []
    for i in ids:
        state = draw(st.sampled_from(["live", "pending_deletion"]))
        expires = AS_OF + draw(offsets(400))
        pending = None
        if state == "pending_deletion":
            pending = AS_OF - timedelta(days=grace) + draw(offsets(20))
        candidates.append(
            Candidate(
                id=i,
                sha256=draw(st.sampled_from(SHAS)),
                tier=draw(st.sampled_from(["6m", "2y"])),
                expires_at=expires,
                state=state,
                pending_since=pending,
                protected_by=draw(st.sampled_from(PROTECTIONS)),
            )
        )
    uses = Counter(c.sha256 for c in candidates)
    # Every candidate is a reference; other recordings (not expired) may hold more.
    refs = {sha: n + draw(st.integers(0, 2)) for sha, n in uses.items()}
    return candidates, refs, grace


def make_plan(candidates: list[Candidate], refs: dict[str, int], grace: int) -> Plan:
    return plan(candidates, refs, AS_OF, grace_days=grace, policy_version="r1/minimum")


@settings(max_examples=120)
@given(candidate_sets())
def test_plan_never_breaks_the_rules(drawn: tuple[list[Candidate], dict[str, int], int]) -> None:
    candidates, refs, grace = drawn
    result = make_plan(candidates, refs, grace)
    grace_period = timedelta(days=grace)
    marked = [c.id for c in result.mark_pending]
    deleted = [d.candidate.id for d in result.delete]
    waiting = [c.id for c, _ in result.waiting]
    protected = [c.id for c in result.protected]
    everything = marked + deleted + waiting + protected

    # Every expired candidate is in exactly one list; nothing unexpired is in any.
    expired = {c.id for c in candidates if c.expires_at <= AS_OF}
    assert len(everything) == len(set(everything))
    assert set(everything) == expired
    by_id = {c.id: c for c in candidates}

    for c in result.protected:
        assert c.protected_by
    for c in candidates:
        if c.protected_by:
            assert c.id not in marked and c.id not in deleted and c.id not in waiting
    for c in result.mark_pending:
        assert c.state == "live" and c.expires_at <= AS_OF
    for d in result.delete:
        c = d.candidate
        assert c.state == "pending_deletion" and not c.protected_by
        assert c.pending_since is not None and c.pending_since + grace_period <= AS_OF
        assert c.expires_at <= AS_OF
        assert f"{grace} days' grace over" in d.reason
    for c, when in result.waiting:
        assert c.state == "pending_deletion" and c.pending_since is not None
        assert when == c.pending_since + grace_period > AS_OF
    # Live candidates are only ever marked.
    for i in deleted + waiting:
        assert by_id[i].state == "pending_deletion"

    # An object goes with the last recording not yet deleted that uses it, never before.
    for sha in {c.sha256 for c in candidates}:
        mine = [d for d in result.delete if d.candidate.sha256 == sha]
        flags = [d.remove_object for d in mine]
        if len(mine) == refs[sha]:
            assert flags == [False] * (len(mine) - 1) + [True]
        else:
            assert len(mine) < refs[sha] and not any(flags)

    # Whatever is planned is in (expiry, id) order.
    for group in (result.mark_pending, [d.candidate for d in result.delete]):
        keys = [(c.expires_at, c.id) for c in group]
        assert keys == sorted(keys)
    assert result.empty == (not marked and not deleted)
    json.dumps(result.as_json())


@settings(max_examples=60)
@given(candidate_sets(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_independent_of_input_order(
    drawn: tuple[list[Candidate], dict[str, int], int], rng: random.Random
) -> None:
    candidates, refs, grace = drawn
    first = make_plan(candidates, refs, grace)
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    assert make_plan(shuffled, refs, grace) == first
    assert (
        plan(iter(shuffled), dict(refs), AS_OF, grace_days=grace, policy_version="r1/minimum")
        == first
    )
    assert make_plan(candidates, refs, grace).as_json() == first.as_json()


@settings(max_examples=60)
@given(candidate_sets(), st.lists(st.integers(1, 400), max_size=5))
def test_unexpired_candidates_change_nothing(
    drawn: tuple[list[Candidate], dict[str, int], int], days: list[int]
) -> None:
    """The caller may pass a superset: candidates expiring after as_of are ignored."""
    candidates, refs, grace = drawn
    extra = [
        Candidate(
            200_000 + n, SHAS[0], "6m", AS_OF + timedelta(days=d, microseconds=1), "live", None
        )
        for n, d in enumerate(days)
    ]
    more_refs = dict(refs)
    if extra:
        # They are references too: an object they share is kept.
        more_refs[SHAS[0]] = more_refs.get(SHAS[0], 0) + len(extra)
    result = make_plan([*candidates, *extra], more_refs, grace)
    baseline = make_plan(candidates, refs, grace)
    planned = [c.id for c in result.mark_pending] + [d.candidate.id for d in result.delete]
    assert not set(planned) & {c.id for c in extra}
    assert result.mark_pending == baseline.mark_pending
    assert result.waiting == baseline.waiting and result.protected == baseline.protected
    for ours, theirs in zip(result.delete, baseline.delete, strict=True):
        assert ours.candidate == theirs.candidate
        if ours.candidate.sha256 == SHAS[0] and extra:
            assert not ours.remove_object


def _candidate(
    i: int,
    sha: str,
    expires_days: float,
    state: str = "live",
    pending_days: float | None = None,
    protected: tuple[str, ...] = (),
) -> Candidate:
    pending = AS_OF + timedelta(days=pending_days) if pending_days is not None else None
    return Candidate(i, sha, "6m", AS_OF + timedelta(days=expires_days), state, pending, protected)


def test_a_worked_example() -> None:
    a, b, c = SHAS[:3]
    candidates = [
        _candidate(1, a, -30),  # live, expired: marked
        _candidate(2, a, -40, "pending_deletion", -8),  # grace (7 d) over: deleted, a shared
        _candidate(3, b, -40, "pending_deletion", -7),  # exactly 7 days: deleted, b removed
        _candidate(4, c, -40, "pending_deletion", -6.5),  # half a day of grace left
        _candidate(5, c, -40, "pending_deletion", -9, ("hold",)),  # held: untouched
        _candidate(6, c, 1),  # not yet expired
        _candidate(7, b, 0),  # expires exactly now: marked
    ]
    result = plan(candidates, {a: 2, b: 2, c: 3}, AS_OF, grace_days=7, policy_version="r1/x")
    assert [c.id for c in result.mark_pending] == [1, 7]
    assert [(d.candidate.id, d.remove_object) for d in result.delete] == [(2, False), (3, False)]
    assert [(c.id, when) for c, when in result.waiting] == [(4, AS_OF + timedelta(days=0.5))]
    assert [c.id for c in result.protected] == [5]
    assert result.delete[1].reason == (
        "tier 6m expired 2030-05-06T12:00:00Z; pending deletion since "
        "2030-06-08T12:00:00Z, 7 days' grace over"
    )
    data: Any = result.as_json()
    assert data["mark_pending"][0]["delete_after"] == "2030-06-22T12:00:00Z"
    assert data["waiting"][0]["delete_after"] == "2030-06-16T00:00:00Z"
    assert data["protected"][0]["protected_by"] == ["hold"]
    assert (data["policy_version"], data["grace_days"]) == ("r1/x", 7)

    # Once 1 and 7 are deleted too, the last users of a and b go with them.
    later = plan(
        [
            _candidate(1, a, -30, "pending_deletion", -7),
            _candidate(7, b, 0, "pending_deletion", -7),
        ],
        {a: 1, b: 1},
        AS_OF,
        grace_days=7,
        policy_version="r1/x",
    )
    assert [(d.candidate.id, d.remove_object) for d in later.delete] == [(1, True), (7, True)]


def test_two_deletions_of_one_object_in_one_plan_remove_it_once() -> None:
    a = SHAS[0]
    candidates = [
        _candidate(9, a, -10, "pending_deletion", -10),
        _candidate(3, a, -10, "pending_deletion", -10),
        _candidate(5, a, -20, "pending_deletion", -10),
    ]
    result = plan(candidates, {a: 3}, AS_OF, grace_days=7, policy_version="v")
    assert [(d.candidate.id, d.remove_object) for d in result.delete] == [
        (5, False),
        (3, False),
        (9, True),
    ]
    kept = plan(candidates, {a: 4}, AS_OF, grace_days=7, policy_version="v")
    assert not any(d.remove_object for d in kept.delete)


def test_pending_without_a_date_is_marked_again_and_unknown_objects_count_once() -> None:
    a = SHAS[0]
    undated = _candidate(1, a, -10, "pending_deletion", None)
    assert plan([undated], {}, AS_OF, grace_days=0, policy_version="v").mark_pending == (undated,)
    due = _candidate(2, a, -10, "pending_deletion", 0)
    result = plan([due], {}, AS_OF, grace_days=0, policy_version="v")
    assert [(d.candidate.id, d.remove_object) for d in result.delete] == [(2, True)]


def test_candidate_from_a_catalog_row() -> None:
    row = {
        "id": 12,
        "sha256": SHAS[1],
        "tier": "2y",
        "expires_at": "2028-11-25T09:00:00Z",
        "retention_state": "pending_deletion",
        "pending_since": "2028-12-01T00:00:00Z",
    }
    c = Candidate.from_row(row, ("hold",))
    assert c == Candidate(
        12,
        SHAS[1],
        "2y",
        datetime(2028, 11, 25, 9, tzinfo=UTC),
        "pending_deletion",
        datetime(2028, 12, 1, tzinfo=UTC),
        ("hold",),
    )
    assert Candidate.from_row({**row, "pending_since": None}, ()).pending_since is None
    assert c.as_json()["expires_at"] == row["expires_at"]
