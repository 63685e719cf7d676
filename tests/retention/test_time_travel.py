"""Years of retention with the injected clock (the issue's must-have).

A small fleet of recordings, each with its own fate, is ingested for real
and labelled; then the clock jumps to 5 months, 7 months, 25 months and 10
years after ingest. At each of these a sweep marks what has expired, and a
second sweep once the grace period is over deletes it. After every round
exactly the right store objects remain, every deletion has exactly one
`retention.deleted` entry, and `verify` passes. The same end state built
with the labels, cases and holds applied in another order (and the cameras
docked in another order) gives the same result, field for field.

Fates (T0 = ingest, 2026-11-25):

| recording    | what happens                                 | minimum (6m)   | daily (2y)     |
|--------------|----------------------------------------------|----------------|----------------|
| routine      | nothing                                      | deleted at 7m  | deleted at 25m |
| evidence     | tagged evidence                              | kept           | kept           |
| open_case    | linked to a case that stays open             | kept           | kept           |
| closed_major | linked to a major_case case, closed          | kept           | kept           |
| closed_plain | linked to a case without category, closed    | deleted at 7m  | deleted at 25m |
| held         | held, hold released after the 7m round       | deleted at 25m | deleted at 25m |
| restored     | restored the first time it is pending        | deleted at 25m | deleted at 10y |
| shared_a/b   | same bytes, two cameras; b tagged evidence   | a at 7m        | a at 25m       |
| shared_c/d   | same bytes, two cameras; d held with `held`  | c 7m, d 25m    | both at 25m    |
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.catalog import Recording
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.retention.policy import add_months
from dockd.service import Service
from tests.conftest import NOW
from tests.test_service_retention import Shot, dock, entries, quick

GRACE = timedelta(days=7)
CHECKPOINTS = (5, 7, 25, 120)  # months after ingest
CAM1_ROLES = (
    "routine",
    "evidence",
    "open_case",
    "closed_major",
    "closed_plain",
    "held",
    "restored",
    "shared_a",
    "shared_c",
)
CAM2_ROLES = ("shared_b", "shared_d")
ROLES = CAM1_ROLES + CAM2_ROLES
SURVIVORS = {"evidence", "open_case", "closed_major", "shared_b"}
PERMANENT = {"evidence", "closed_major", "shared_b"}

# Cumulative deletions after each checkpoint's round.
EXPECTED_DELETED: dict[str, dict[int, set[str]]] = {
    "minimum": {
        5: set(),
        7: {"routine", "closed_plain", "shared_a", "shared_c"},
        25: {"routine", "closed_plain", "shared_a", "shared_c", "held", "restored", "shared_d"},
    },
    "daily_enforcement": {
        5: set(),
        7: set(),
        25: {"routine", "closed_plain", "shared_a", "shared_c", "held", "shared_d"},
    },
}
for _fates in EXPECTED_DELETED.values():
    _fates[120] = set(ROLES) - SURVIVORS
# Where the restored recording's keep_until lands: 30 days after its first marking.
EXPECTED_KEEP = {"minimum": "2027-07-25T09:00:00Z", "daily_enforcement": "2029-01-24T09:00:00Z"}
# The first of two recordings sharing bytes never removes them; the last one does.
KEEPS_OBJECT = {"shared_a", "shared_c"}


@dataclass
class Fleet:
    svc: Service
    clock: FixedClock
    ids: dict[str, int]
    shas: dict[str, str]

    def role(self, recording_id: int) -> str:
        return next(r for r, i in self.ids.items() if i == recording_id)

    def roles(self, ids: list[int] | tuple[int, ...]) -> set[str]:
        return {self.role(i) for i in ids}

    def row(self, role: str) -> Recording:
        found = self.svc.recording(self.ids[role])
        assert found is not None
        return found


def shots() -> tuple[list[Shot], list[Shot]]:
    """Distinct bytes per recording, except the two shared pairs; CAM1 records first.

    The same bytes every time, so that two builds hold the same objects."""
    rng = random.Random(947)
    data = {role: rng.randbytes(200) for role in ROLES}
    data["shared_b"], data["shared_d"] = data["shared_a"], data["shared_c"]
    cam1 = [
        Shot(datetime(2026, 11, 25, 1, 5 * i, tzinfo=UTC), data[role], i + 1)
        for i, role in enumerate(CAM1_ROLES)
    ]
    cam2 = [
        Shot(datetime(2026, 11, 25, 2, 5 * i, tzinfo=UTC), data[r], i + 1, "054321", "DSJ0002")
        for i, r in enumerate(CAM2_ROLES)
    ]
    return cam1, cam2


def label_in_order(fleet: Fleet) -> None:
    """The labels as a supervisor would usually set them: tag, cases, then holds."""
    svc, ids = fleet.svc, fleet.ids
    svc.tag([ids["evidence"]], categories=("evidence",))
    svc.tag([ids["shared_b"]], categories=("evidence",))
    svc.create_case("C-OPEN", cause="assault")
    svc.link_case("C-OPEN", [ids["open_case"]])
    svc.create_case("C-MAJOR", cause="fraud ring", categories=("major_case",))
    svc.link_case("C-MAJOR", [ids["closed_major"]])
    svc.set_case_state("C-MAJOR", "closed", reason="judgment")
    svc.create_case("C-PLAIN", cause="parking")
    svc.link_case("C-PLAIN", [ids["closed_plain"]])
    svc.set_case_state("C-PLAIN", "closed", reason="paid")
    svc.set_hold(ids=[ids["held"], ids["shared_d"]], reason="litigation")


def label_out_of_order(fleet: Fleet) -> None:
    """The same end state the other way round: holds first, links before tags and closes,
    a case closed before its recording is linked, a category set by way of another."""
    svc, ids = fleet.svc, fleet.ids
    svc.set_hold(ids=[ids["shared_d"], ids["held"]], reason="litigation")
    svc.create_case("C-PLAIN", cause="parking")
    svc.create_case("C-MAJOR", cause="fraud ring", categories=("major_case",))
    svc.set_case_state("C-MAJOR", "closed", reason="judgment")
    svc.link_case("C-MAJOR", [ids["closed_major"]])
    svc.link_case("C-PLAIN", [ids["closed_plain"]])
    svc.create_case("C-OPEN", cause="assault")
    svc.link_case("C-OPEN", [ids["open_case"]])
    svc.tag([ids["shared_b"], ids["evidence"]], categories=("review",))
    svc.tag(
        [ids["evidence"], ids["shared_b"]],
        categories=("evidence",),
        remove_categories=("review",),
        reason="review closed, kept as evidence",
    )
    svc.set_case_state("C-PLAIN", "closed", reason="paid")


def build(config: Config, clock: FixedClock, folder: Path, order: str) -> Fleet:
    svc = Service(config, clock)
    cam1, cam2 = shots()
    if order == "usual":
        recs = dock(svc, folder / "cam1", "CAM1", cam1) + dock(svc, folder / "cam2", "CAM2", cam2)
    else:
        recs = dock(svc, folder / "cam2", "CAM2", cam2)
        recs += dock(svc, folder / "cam1", "CAM1", cam1)
        recs = recs[len(cam2) :] + recs[: len(cam2)]
    fleet = Fleet(svc, clock, {r: x.id for r, x in zip(ROLES, recs, strict=True)}, {})
    fleet.shas = {r: x.sha256 for r, x in zip(ROLES, recs, strict=True)}
    assert fleet.shas["shared_a"] == fleet.shas["shared_b"] != fleet.shas["shared_c"]
    assert fleet.shas["shared_c"] == fleet.shas["shared_d"]
    (label_in_order if order == "usual" else label_out_of_order)(fleet)
    return fleet


def snapshot(fleet: Fleet) -> dict[str, Any]:
    """What must come out the same whatever the order: per recording (by role) and on disk."""
    rows = {}
    for role in ROLES:
        r = fleet.row(role)
        rows[role] = (
            r.tier,
            r.expires_at,
            r.keep_until,
            r.retention_state,
            r.pending_since,
            r.deleted_at,
            r.categories,
        )
    objects = sorted(name for name, _ in fleet.svc.store.iter_objects())
    return {"rows": rows, "objects": objects}


def check_round(fleet: Fleet, preset: str, months: int) -> None:
    svc = fleet.svc
    expected = EXPECTED_DELETED[preset][months]
    context = f"{preset}, {months} months"
    deleted = {role for role in ROLES if fleet.row(role).deleted}
    assert deleted == expected, context
    states = {role: fleet.row(role).retention_state for role in ROLES}
    assert {r for r, s in states.items() if s not in ("live", "deleted")} == set(), states

    # Exactly one retention.deleted entry per tombstone, and none for anything else.
    logged = [e for e in entries(svc, "retention.deleted")]
    per_role: dict[str, list[Any]] = {}
    for e in logged:
        per_role.setdefault(fleet.role(int(e.data["recording"])), []).append(e)
    assert set(per_role) == deleted, context
    for role, found in per_role.items():
        assert len(found) == 1, f"{context}: {role} deleted {len(found)} times"
        data = found[0].data
        row = fleet.row(role)
        assert data["sha256"] == fleet.shas[role]
        assert (data["tier"], data["expires_at"]) == (row.tier, row.expires_at)
        assert data["pending_since"] is not None and row.deleted_at is not None
        assert data["policy_version"] == f"r1/{preset}"
        assert data["object_removed"] is (role not in KEEPS_OBJECT), (context, role)

    # Exactly the objects a recording still alive uses are in the store.
    alive = {fleet.shas[r] for r in ROLES if r not in deleted}
    on_disk = {name for name, _ in svc.store.iter_objects()}
    assert on_disk == alive, context
    report = svc.verify()
    assert report.ok, (context, report.problems)
    assert report.orphans == () and report.objects == len(alive)
    assert report.recordings == len(ROLES)


def travel(config: Config, folder: Path, order: str) -> list[dict[str, Any]]:
    preset = config.retention.preset
    clock = FixedClock(NOW)
    fleet = build(config, clock, folder, order)
    svc = fleet.svc
    restored_at: datetime | None = None
    snapshots = []
    try:
        for months in CHECKPOINTS:
            moment = add_months(NOW, months)
            clock.current = moment
            first = svc.sweep()
            protected = fleet.roles([c.id for c in first.plan.protected])
            assert (
                "open_case" in protected
                or months == 5
                or (preset == "daily_enforcement" and months == 7)
            )
            assert not protected & EXPECTED_DELETED[preset][months] - {"held", "shared_d"}
            assert not fleet.roles(first.deleted) & fleet.roles(first.marked)
            if restored_at is None and fleet.ids["restored"] in first.marked:
                svc.restore(fleet.ids["restored"], reason="needed for training")
                restored_at = moment
            clock.current = moment + GRACE + timedelta(days=1)
            second = svc.sweep()
            assert second.marked == ()
            # Nothing is marked and deleted in one round without its grace.
            assert fleet.roles(second.deleted) <= fleet.roles(first.marked)
            check_round(fleet, preset, months)
            if months == 7:
                for hold in svc.holds():
                    if hold.active:
                        svc.release_hold(hold.hold, reason="settled")
            snapshots.append(snapshot(fleet))
        assert fleet.row("restored").keep_until == EXPECTED_KEEP[preset]
        for role in PERMANENT:
            assert (fleet.row(role).tier, fleet.row(role).expires_at) == ("permanent", None)
        size = svc.catalog.head()[0]
    finally:
        svc.close()
    # A writer starting later finds nothing to recover and nothing to re-tier.
    with Service(config, clock) as again:
        assert again.catalog.head()[0] == size
        assert again.verify().ok
        assert again.sweep().deleted == ()
    return snapshots


@pytest.mark.parametrize("preset", ["minimum", "daily_enforcement"])
def test_years_of_sweeps_keep_exactly_the_right_footage(
    config: Config, tmp_path: Path, preset: str
) -> None:
    runs: dict[str, list[dict[str, Any]]] = {}
    for order in ("usual", "reversed"):
        folder = tmp_path / order
        cfg = quick(config.with_state_dir(folder / "state"), preset)
        runs[order] = travel(cfg, folder, order)
    for months, usual, other in zip(CHECKPOINTS, runs["usual"], runs["reversed"], strict=True):
        assert usual == other, f"{preset}: another order differs after {months} months"


def test_checkpoint_moments_are_where_the_tiers_fall() -> None:
    """The checkpoints straddle the tiers: guards the table above against a moved NOW."""
    end = datetime(2026, 11, 25, 2, 5, tzinfo=UTC)  # the latest recording of the fleet
    first = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)

    def after(months: int) -> datetime:
        return add_months(NOW, months)

    assert after(5) < add_months(first, 6) and add_months(end, 6) < after(7)
    assert after(7) + GRACE < add_months(first, 24)
    assert add_months(end, 24) < after(25)
    assert after(7) + timedelta(days=30) < after(25)
    assert after(25) + timedelta(days=30) < after(120)
