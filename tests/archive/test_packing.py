"""The disc packer (dockd/archive/plan.py): capacity, copies, cases, stability."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockd.archive.plan import (
    DISC_RESERVE,
    MEDIA,
    PER_RECORDING,
    SECTOR,
    Item,
    Medium,
    disc_label,
    pack,
    parse_medium,
    site_code,
)
from dockd.errors import UsageError

SMALL = Medium("test", 100 * SECTOR * 64 + DISC_RESERVE)  # 12.5 MiB usable


@st.composite
def selections(draw: st.DrawFn) -> list[Item]:
    n = draw(st.integers(0, 40))
    cases = draw(st.lists(st.sampled_from(["C1", "C2", "C3", None]), min_size=n, max_size=n))
    sizes = draw(
        st.lists(st.integers(0, SMALL.usable - PER_RECORDING - SECTOR), min_size=n, max_size=n)
    )
    return [
        Item(i + 1, size, case) for i, (size, case) in enumerate(zip(sizes, cases, strict=True))
    ]


@settings(max_examples=200, deadline=None)
@given(selections(), st.integers(1, 3))
def test_no_disc_over_capacity_and_every_recording_on_exactly_copies_discs(
    items: list[Item], copies: int
) -> None:
    plan = pack(items, SMALL, copies)
    footprint = {i.recording: i.footprint for i in items}
    for disc in plan.discs:
        assert disc.used == sum(footprint[r] for r in disc.recordings)
        assert disc.used <= SMALL.usable
        assert disc.recordings  # no empty disc
    counts: dict[int, int] = {}
    for disc in plan.discs:
        for r in disc.recordings:
            counts[r] = counts.get(r, 0) + 1
    assert counts == {i.recording: copies for i in items}
    # Each copy is the same set of discs, numbered 1..n.
    per_copy = [[d for d in plan.discs if d.copy == c] for c in range(1, copies + 1)]
    assert all([d.recordings for d in s] == [d.recordings for d in per_copy[0]] for s in per_copy)
    assert [d.number for d in per_copy[0]] == list(range(1, len(per_copy[0]) + 1))


@settings(max_examples=200, deadline=None)
@given(selections())
def test_a_case_that_fits_on_one_disc_stays_together(items: list[Item]) -> None:
    plan = pack(items, SMALL)
    for case in {i.case for i in items if i.case}:
        members = [i for i in items if i.case == case]
        if sum(i.footprint for i in members) <= SMALL.usable:
            holding = {d.number for d in plan.discs for r in d.recordings if r in
                       {m.recording for m in members}}  # fmt: skip
            assert len(holding) == 1, f"case {case} split over discs {holding}"


@settings(max_examples=100, deadline=None)
@given(selections(), st.randoms(use_true_random=False))
def test_the_plan_is_stable(items: list[Item], rnd: object) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert pack(shuffled, SMALL, 2) == pack(items, SMALL, 2)


@settings(max_examples=100, deadline=None)
@given(selections())
def test_first_fit_decreasing_uses_few_discs(items: list[Item]) -> None:
    """FFD uses at most 11/9 OPT + 1 discs; OPT >= total / capacity."""
    plan = pack([Item(i.recording, i.size) for i in items], SMALL)
    lower = -(-sum(i.footprint for i in items) // SMALL.usable)
    assert len(plan.discs) <= 11 * lower / 9 + 1


def test_a_file_larger_than_the_medium_names_a_medium_it_fits() -> None:
    with pytest.raises(
        UsageError, match=r"recording 7 .* does not fit on dvd.*use a larger medium: bd25"
    ):
        pack([Item(7, 6 * 10**9)], parse_medium("dvd"))
    with pytest.raises(UsageError, match="none of dvd, bd25, bd50, bd100"):
        pack([Item(8, 200 * 10**9)], parse_medium("bd100"))


@pytest.mark.parametrize(
    ("text", "capacity"),
    [
        ("dvd", MEDIA["dvd"]),
        ("BD25", MEDIA["bd25"]),
        ("700M", 700 * 10**6),
        ("4.7G", 4_700_000_000),
        ("64GiB", 64 * 2**30),
        ("100000000", 100_000_000),
    ],
)
def test_parse_medium(text: str, capacity: int) -> None:
    assert parse_medium(text).capacity == capacity


@pytest.mark.parametrize("text", ["floppy", "12X", "-5G", "1M"])
def test_parse_medium_refuses_nonsense(text: str) -> None:
    with pytest.raises(UsageError, match="--media"):
        parse_medium(text)


def test_disc_labels_are_iso_volume_ids() -> None:
    label = disc_label(site_code("dockd/3d1219c7c4c5"), 12345, 999, 2)
    assert label == f"E12345D999C2_{site_code('dockd/3d1219c7c4c5')}"
    assert len(label[:16]) == 16 and label[:16] != disc_label("ABCDEF", 12345, 999, 1)[:16]
    assert site_code("dockd/a") != site_code("dockd/b") and len(site_code("x")) == 6
    assert len(label) <= 32 and set(label) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
