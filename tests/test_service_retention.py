"""Retention (R4) through the Service, with recordings ingested for real.

Tiny random-byte files stand in for footage (the media does not matter
here: ffprobe is pointed at nothing, so every file is flagged unreadable,
which ingest allows). Their names follow GA/T 947, so their recorded times
come from the name, in the camera's zone (Asia/Shanghai, UTC+8).

The helpers at the top (`quick`, `Shot`, `dock`, `entries`) are shared
with tests/retention/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.catalog import Recording, RecordingFilter
from dockd.clock import FixedClock, isoformat_utc, parse_utc
from dockd.config import Config, RetentionConfig
from dockd.devices.profiles import make_profile
from dockd.errors import DockdError, StoreError
from dockd.integrity.chain import LogEntry
from dockd.retention.policy import LONG_TERM, add_months, expiry
from dockd.runner.session import run_session
from dockd.service import Service
from dockd.store import Store
from tests.conftest import NOW, put

CAMERA_ZONE = timedelta(hours=8)  # names are written in Asia/Shanghai time
GRACE = timedelta(days=7)
# Moments far enough after the recordings below for each tier to be over.
AFTER_2Y = datetime(2029, 1, 1, tzinfo=UTC)


# -- shared helpers ------------------------------------------------------------------


def quick(config: Config, preset: str = "daily_enforcement", **retention: Any) -> Config:
    """`config` with an ffprobe that does not exist (instant, flags the file) and a preset."""
    ingest = dataclasses.replace(config.ingest, ffprobe=str(config.state_dir.parent / "no-ffprobe"))
    return dataclasses.replace(
        config, ingest=ingest, retention=RetentionConfig(preset=preset, **retention)
    )


@dataclasses.dataclass(frozen=True)
class Shot:
    """One camera file: when it was recorded (UTC), its bytes and its number."""

    start: datetime
    data: bytes
    seq: int
    officer: str = "012345"
    device: str = "DSJ0001"

    @property
    def name(self) -> str:
        local = self.start + CAMERA_ZONE
        return f"{self.officer}_{self.device}_{local:%Y%m%d%H%M%S}_{self.seq:04d}.MP4"


def dock(svc: Service, folder: Path, serial: str, shots: Sequence[Shot]) -> list[Recording]:
    """Put `shots` on a camera at `folder`, dock it as `serial`; their recordings, in order."""
    for shot in shots:
        put(folder, f"DCIM/100MEDIA/{shot.name}", shot.data)
    profile = make_profile("gat947", svc.config.profiles)
    report = run_session(svc, folder, serial, profile, wipe=True)
    assert report.state == "done" and not report.failed, report
    by_name = {o.found.display.rsplit("/", 1)[-1]: o.recording for o in report.outcomes}
    return [by_name[shot.name] for shot in shots]


def entries(svc: Service, kind: str | None = None, after: int = 0) -> list[LogEntry]:
    """The log's entries after seq `after`, of one kind if given."""
    found = [LogEntry.from_bytes(row.raw) for row in svc.catalog.log_rows() if row.seq > after]
    return [e for e in found if kind is None or e.kind == kind]


def head(svc: Service) -> int:
    return svc.catalog.head()[0]


def at(hour: int, minute: int = 0) -> datetime:
    """A recording time on the morning of NOW (2026-11-25)."""
    return datetime(2026, 11, 25, hour, minute, tzinfo=UTC)


def rec(svc: Service, recording_id: int) -> Recording:
    found = svc.recording(recording_id)
    assert found is not None
    return found


def deleted_entries(svc: Service) -> dict[int, list[LogEntry]]:
    result: dict[int, list[LogEntry]] = {}
    for e in entries(svc, "retention.deleted"):
        result.setdefault(int(e.data["recording"]), []).append(e)
    return result


def catalog_bytes(state_dir: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(state_dir.glob("catalog.sqlite*"))
        if not p.name.endswith("-shm")
    }


def sweep_through(svc: Service, clock: FixedClock, moment: datetime) -> tuple[list[int], list[int]]:
    """Sweep at `moment` (marks), and again once the grace is over (deletes)."""
    clock.current = moment
    first = svc.sweep()
    clock.current = moment + GRACE + timedelta(days=1)
    second = svc.sweep()
    return list(first.marked) + list(second.marked), list(first.deleted) + list(second.deleted)


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture
def cfg(config: Config) -> Config:
    return quick(config)


@pytest.fixture
def svc(cfg: Config, clock: FixedClock) -> Iterator[Service]:
    with Service(cfg, clock) as service:
        yield service


def one(
    svc: Service, tmp_path: Path, start: datetime | None = None, data: bytes = b""
) -> Recording:
    start = start or at(1)
    data = data or os.urandom(64)
    folder = tmp_path / f"cam-{hashlib.sha256(data).hexdigest()[:8]}"
    (recording,) = dock(svc, folder, "CAM1", [Shot(start, data, int(start.timestamp()) % 9999)])
    return recording


# -- tier at ingest ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "tier", "expires"),
    [
        ("daily_enforcement", "2y", "2028-11-25T02:00:00Z"),
        ("minimum", "6m", "2027-05-25T02:00:00Z"),
    ],
)
def test_ingest_gives_the_presets_tier_and_logs_it(
    config: Config, clock: FixedClock, tmp_path: Path, preset: str, tier: str, expires: str
) -> None:
    with Service(quick(config, preset), clock) as svc:
        r = one(svc, tmp_path, at(1))
        assert (r.tier, r.expires_at, r.retention_state) == (tier, expires, "live")
        assert r.recorded_end == "2026-11-25T01:00:00Z"
        assert (r.keep_until, r.pending_since, r.deleted_at) == (None, None, None)
        ingested = entries(svc, "recording.ingested")
        assert len(ingested) == 1 and ingested[0].seq == r.log_seq
        data = ingested[0].data
        assert (data["tier"], data["expires_at"], data["policy_version"]) == (
            tier,
            expires,
            f"r1/{preset}",
        )
        (policy,) = entries(svc, "retention.policy")
        assert policy.data == {
            "version": f"r1/{preset}",
            "preset": preset,
            "routine_tier": tier,
            "grace_days": 7,
            "by": "config",
        }
        assert policy.seq < r.log_seq
        assert svc.verify().ok


def test_expiry_keeps_the_calendar_rule_through_ingest(svc: Service, tmp_path: Path) -> None:
    """31 August + 24 months, read from a name in camera time: never shorter."""
    r = one(svc, tmp_path, datetime(2026, 8, 31, 3, 0, 0, tzinfo=UTC))
    assert r.expires_at == "2028-08-31T04:00:00Z"
    end = datetime(2026, 2, 28, 20, 0, tzinfo=UTC)  # 1 March 04:00 on the camera
    r2 = one(svc, tmp_path, end)
    assert r2.recorded_end == "2026-02-28T20:00:00Z"
    # Two years on the camera's own calendar end on 1 March 2028 04:00 there
    # (29 February 20:00 UTC), later than on the UTC calendar; + 1 h summer time.
    assert r2.expires_at == "2028-02-29T21:00:00Z"
    assert r2.expires_at > isoformat_utc(add_months(end, 24))


# -- labels ------------------------------------------------------------------------------


def test_tag_with_a_long_term_category_makes_it_permanent(svc: Service, tmp_path: Path) -> None:
    r = one(svc, tmp_path)
    before = head(svc)
    out = svc.tag([r.id], categories=("evidence",), cause="theft", actor="sgt.wu").as_json()
    tagged, updated = entries(svc, after=before)
    assert (tagged.kind, updated.kind) == ("recording.tagged", "retention.updated")
    assert tagged.data == {
        "recordings": [r.id],
        "cause": "theft",
        "parties_added": [],
        "categories_added": ["evidence"],
        "categories_removed": [],
        "note": None,
        "reason": None,
        "by": "sgt.wu",
    }
    assert updated.data["trigger"] == tagged.seq
    assert updated.data["reason"] == "recording.tagged"
    assert updated.data["policy_version"] == "r1/daily_enforcement"
    assert updated.data["tiers"] == {"permanent": [r.id]}
    assert updated.data["kept"] == []
    assert out["log_entry"] == tagged.seq and out["tier_changed"] == 1
    now = rec(svc, r.id)
    assert (now.tier, now.expires_at, now.categories, now.cause) == (
        "permanent",
        None,
        ("evidence",),
        "theft",
    )
    # Nothing to move: a cause alone, or a second long-term category.
    before = head(svc)
    svc.tag([r.id], cause="robbery")
    svc.tag([r.id], categories=("review",), parties=("Li Si",))
    assert [e.kind for e in entries(svc, after=before)] == ["recording.tagged"] * 2
    assert rec(svc, r.id).categories == ("evidence", "review")
    assert svc.verify().ok


def test_removing_a_category_needs_a_reason(svc: Service, tmp_path: Path) -> None:
    r = one(svc, tmp_path)
    svc.tag([r.id], categories=("evidence", "routine"))
    before = head(svc)
    with pytest.raises(DockdError, match="needs a reason"):
        svc.tag([r.id], remove_categories=("evidence",))
    with pytest.raises(DockdError, match="needs a reason"):
        svc.tag([r.id], remove_categories=("evidence",), reason="  ")
    with pytest.raises(DockdError, match="both added and removed"):
        svc.tag([r.id], categories=("review",), remove_categories=("review",), reason="x")
    with pytest.raises(DockdError, match="unknown category"):
        svc.tag([r.id], categories=("forever",))
    with pytest.raises(DockdError, match="no recording 999"):
        svc.tag([r.id, 999], categories=("evidence",))
    assert head(svc) == before and rec(svc, r.id).tier == "permanent"

    svc.tag([r.id], remove_categories=("evidence",), reason="tagged by mistake")
    tagged, updated = entries(svc, after=before)
    assert tagged.data["categories_removed"] == ["evidence"]
    assert tagged.data["reason"] == "tagged by mistake"
    assert updated.data["tiers"] == {"2y": [r.id]} and updated.data["trigger"] == tagged.seq
    back = rec(svc, r.id)
    assert (back.tier, back.expires_at, back.categories) == ("2y", r.expires_at, ("routine",))


def test_every_schema_5_entry_names_the_person(svc: Service, tmp_path: Path) -> None:
    r = one(svc, tmp_path)
    before = head(svc)
    svc.tag([r.id], categories=("evidence",), actor="sgt.wu")
    for e in entries(svc, after=before):
        assert "by" in e.data, e.kind


# -- cases ----------------------------------------------------------------------------------


def test_linked_recordings_get_the_case_categories(svc: Service, tmp_path: Path) -> None:
    a, b = one(svc, tmp_path, at(1)), one(svc, tmp_path, at(2))
    svc.create_case("C-1", cause="fight", parties=("Li Si",), categories=("major_case",))
    with pytest.raises(DockdError, match="exists already"):
        svc.create_case("C-1", cause="again")
    before = head(svc)
    out = svc.link_case("C-1", [a.id], reason="on scene", actor="sgt.wu").as_json()
    linked, updated = entries(svc, after=before)
    assert linked.kind == "case.linked" and linked.data["recordings"] == [a.id]
    assert updated.data == {
        "reason": "case.linked",
        "trigger": linked.seq,
        "policy_version": "r1/daily_enforcement",
        "tiers": {"permanent": [a.id]},
        "kept": [],
        "by": "sgt.wu",
    }
    assert out["linked"] == [a.id]
    assert (rec(svc, a.id).tier, rec(svc, a.id).expires_at) == ("permanent", None)
    # The recording's own categories stay its own: the case's count through the link.
    assert rec(svc, a.id).categories == ()
    assert rec(svc, b.id).tier == "2y"
    with pytest.raises(DockdError, match="linked to case C-1 already"):
        svc.link_case("C-1", [a.id])
    with pytest.raises(DockdError, match="no case"):
        svc.link_case("C-9", [a.id])
    with pytest.raises(DockdError, match="needs a reason"):
        svc.unlink_case("C-1", [a.id], reason=" ")
    svc.unlink_case("C-1", [a.id], reason="wrong incident")
    assert (rec(svc, a.id).tier, rec(svc, a.id).expires_at) == ("2y", a.expires_at)
    assert svc.verify().ok


def test_an_open_case_protects_and_closing_it_keeps_the_tier(
    svc: Service, clock: FixedClock, tmp_path: Path
) -> None:
    plain, major, other = (
        one(svc, tmp_path, at(1)),
        one(svc, tmp_path, at(2)),
        one(svc, tmp_path, at(3)),
    )
    svc.create_case("C-1", cause="noise complaint")
    svc.create_case("C-2", cause="riot", categories=("incident",))
    svc.link_case("C-1", [plain.id])
    svc.link_case("C-2", [major.id])
    assert rec(svc, plain.id).expires_at == plain.expires_at  # a case without category: tier only

    clock.current = AFTER_2Y
    the_plan = svc.retention_plan()
    assert [(c.id, c.protected_by) for c in the_plan.protected] == [(plain.id, ("open_case",))]
    assert [c.id for c in the_plan.mark_pending] == [other.id]
    marked, deleted = sweep_through(svc, clock, AFTER_2Y)
    assert (marked, deleted) == ([other.id], [other.id])
    assert rec(svc, plain.id).retention_state == "live"

    with pytest.raises(DockdError, match="needs a reason"):
        svc.set_case_state("C-1", "closed", reason="")
    svc.set_case_state("C-1", "closed", reason="done")
    svc.set_case_state("C-2", "closed", reason="done")
    with pytest.raises(DockdError, match="closed already"):
        svc.set_case_state("C-2", "closed", reason="again")
    # Closing never shortens below the tier: same expiry as at ingest.
    assert (rec(svc, plain.id).tier, rec(svc, plain.id).expires_at) == ("2y", plain.expires_at)
    assert (rec(svc, major.id).tier, rec(svc, major.id).expires_at) == ("permanent", None)
    marked, deleted = sweep_through(svc, clock, clock.current)
    assert (marked, deleted) == ([plain.id], [plain.id])
    assert rec(svc, major.id).retention_state == "live"

    # Reopening a case protects a pending recording again: it goes back to live.
    late = one(svc, tmp_path, at(4))  # docked late: its two years are over already
    svc.link_case("C-1", [late.id])  # a closed case does not protect
    clock.current += timedelta(days=1)
    assert svc.sweep().marked == (late.id,)
    before = head(svc)
    svc.set_case_state("C-1", "open", reason="appeal")
    reopened, updated = entries(svc, after=before)
    assert reopened.kind == "case.reopened" and updated.data["kept"] == [late.id]
    assert updated.data["tiers"] == {}
    assert rec(svc, late.id).retention_state == "live" and rec(svc, late.id).pending_since is None
    clock.current += GRACE * 2
    assert svc.sweep().deleted == ()
    assert svc.verify().ok


# -- holds ------------------------------------------------------------------------------------


def test_holds_by_ids_and_by_case_and_their_release(
    svc: Service, clock: FixedClock, tmp_path: Path
) -> None:
    a, b, c, d = (one(svc, tmp_path, at(h)) for h in (1, 2, 3, 4))
    with pytest.raises(DockdError, match="either a case or recording ids"):
        svc.set_hold(reason="x")
    with pytest.raises(DockdError, match="either a case or recording ids"):
        svc.set_hold(case="C-1", ids=[a.id], reason="x")
    with pytest.raises(DockdError, match="no case"):
        svc.set_hold(case="C-1", reason="x")
    by_ids = svc.set_hold(ids=[a.id], reason="litigation", actor="legal").as_json()
    svc.create_case("C-1", cause="complaint")
    svc.link_case("C-1", [b.id])
    svc.set_case_state("C-1", "closed", reason="closed, but disputed")
    by_case = svc.set_hold(case="C-1", reason="complaint pending").as_json()
    # A recording linked after the hold is covered by it too.
    svc.link_case("C-1", [c.id])
    assert by_case["recordings"] == [b.id]
    assert [h.recordings for h in svc.holds()] == [(a.id,), (b.id, c.id)]

    clock.current = AFTER_2Y
    the_plan = svc.retention_plan()
    assert {c.id: c.protected_by for c in the_plan.protected} == {
        a.id: ("hold",),
        b.id: ("hold",),
        c.id: ("hold",),
    }
    marked, deleted = sweep_through(svc, clock, AFTER_2Y)
    assert (marked, deleted) == ([d.id], [d.id])

    before = head(svc)
    svc.release_hold(int(by_ids["hold"]), reason="settled", actor="legal")
    # Its tier and expiry stay what they were: nothing moves, so no retention.updated.
    (released,) = entries(svc, after=before)
    assert released.data == {"hold": by_ids["hold"], "reason": "settled", "by": "legal"}
    assert released.kind == "hold.released"
    with pytest.raises(DockdError, match="was released"):
        svc.release_hold(int(by_ids["hold"]), reason="again")
    with pytest.raises(DockdError, match="no hold 99"):
        svc.release_hold(99, reason="x")
    marked, deleted = sweep_through(svc, clock, clock.current)
    assert (marked, deleted) == ([a.id], [a.id])
    with pytest.raises(DockdError, match="was deleted by the retention sweep"):
        svc.set_hold(ids=[a.id], reason="too late")

    # A hold set while a recording is pending takes it back to live.
    svc.release_hold(int(by_case["hold"]), reason="complaint withdrawn")
    clock.current += timedelta(days=1)
    assert sorted(svc.sweep().marked) == [b.id, c.id]
    before = head(svc)
    svc.set_hold(ids=[c.id], reason="new complaint")
    _, updated = entries(svc, after=before)
    assert updated.data["kept"] == [c.id] and updated.data["tiers"] == {}
    assert rec(svc, c.id).retention_state == "live"
    clock.current += GRACE * 2
    assert svc.sweep().deleted == (b.id,)
    assert rec(svc, c.id).retention_state == "live"
    assert svc.verify().ok


# -- restore ----------------------------------------------------------------------------------


def test_restore_brings_a_pending_recording_back(
    svc: Service, clock: FixedClock, tmp_path: Path
) -> None:
    r, other = one(svc, tmp_path, at(1)), one(svc, tmp_path, at(2))
    with pytest.raises(DockdError, match="is not pending deletion"):
        svc.restore(r.id, reason="keep")
    clock.current = AFTER_2Y
    assert svc.sweep().marked == (r.id, other.id)
    clock.current += timedelta(days=3, microseconds=1)
    before = head(svc)
    out = svc.restore(r.id, reason="still needed", actor="sgt.wu").as_json()
    keep = "2029-02-03T00:00:01Z"  # now + 30 days, rounded up to the second
    restored, updated = entries(svc, after=before)
    assert restored.kind == "retention.restored"
    assert restored.data == {
        "recording": r.id,
        "reason": "still needed",
        "keep_until": keep,
        "by": "sgt.wu",
    }
    assert updated.data["trigger"] == restored.seq and updated.data["tiers"] == {"2y": [r.id]}
    assert out["keep_until"] == keep
    back = rec(svc, r.id)
    assert (back.retention_state, back.pending_since, back.keep_until) == ("live", None, keep)
    assert (back.tier, back.expires_at) == ("2y", keep)

    clock.current += GRACE
    assert svc.sweep().deleted == (other.id,)
    with pytest.raises(DockdError, match="was deleted at"):
        svc.restore(other.id, reason="too late")
    assert rec(svc, r.id).retention_state == "live"
    marked, deleted = sweep_through(svc, clock, datetime(2029, 2, 3, 0, 0, 1, tzinfo=UTC))
    assert (marked, deleted) == ([r.id], [r.id])
    assert svc.verify().ok


# -- the sweep --------------------------------------------------------------------------------


def test_sweep_in_the_future_is_refused_and_a_dry_run_changes_nothing(
    svc: Service, cfg: Config, tmp_path: Path
) -> None:
    r = one(svc, tmp_path, at(1))
    catalog = catalog_bytes(cfg.state_dir)
    size = head(svc)
    objects = sorted(p.name for _, p in svc.store.iter_objects())
    with pytest.raises(DockdError, match="is in the future"):
        svc.sweep(AFTER_2Y)
    report = svc.sweep(AFTER_2Y, dry_run=True)
    assert report.dry_run and report.marked == () and report.deleted == ()
    assert [c.id for c in report.plan.mark_pending] == [r.id]
    assert report.summary()["dry_run"] is True
    # The plan as of later still lists it; nothing was written anywhere.
    assert [c.id for c in svc.retention_plan(AFTER_2Y).mark_pending] == [r.id]
    assert svc.retention_plan().empty
    assert head(svc) == size
    assert catalog_bytes(cfg.state_dir) == catalog
    assert sorted(p.name for _, p in svc.store.iter_objects()) == objects
    assert rec(svc, r.id).retention_state == "live"


def test_shared_bytes_stay_while_a_recording_uses_them(
    svc: Service, clock: FixedClock, tmp_path: Path
) -> None:
    data = os.urandom(300)
    sha = hashlib.sha256(data).hexdigest()
    (first,) = dock(svc, tmp_path / "cam1", "CAM1", [Shot(at(1), data, 1)])
    (second,) = dock(svc, tmp_path / "cam2", "CAM2", [Shot(at(2), data, 7, device="DSJ0002")])
    assert first.id != second.id and first.sha256 == second.sha256 == sha
    hold = svc.set_hold(ids=[second.id], reason="complaint").as_json()

    marked, deleted = sweep_through(svc, clock, AFTER_2Y)
    assert (marked, deleted) == ([first.id], [first.id])
    assert svc.store.has(sha)
    (entry,) = deleted_entries(svc)[first.id]
    assert entry.data["object_removed"] is False and entry.data["sha256"] == sha
    assert rec(svc, first.id).as_json()["store_path"] is None
    report = svc.verify()
    assert report.ok and report.orphans == () and report.objects == 1

    svc.release_hold(int(hold["hold"]), reason="done")
    marked, deleted = sweep_through(svc, clock, clock.current)
    assert (marked, deleted) == ([second.id], [second.id])
    assert not svc.store.has(sha)
    (entry,) = deleted_entries(svc)[second.id]
    assert entry.data["object_removed"] is True
    assert entry.data["tier"] == "2y" and entry.data["expires_at"] == second.expires_at
    assert len(deleted_entries(svc)[first.id]) == 1
    report = svc.verify()
    assert report.ok and report.orphans == () and report.objects == 0 and report.recordings == 2


def test_two_recordings_of_one_object_deleted_in_one_sweep(
    svc: Service, clock: FixedClock, tmp_path: Path
) -> None:
    data = os.urandom(300)
    (a,) = dock(svc, tmp_path / "cam1", "CAM1", [Shot(at(1), data, 1)])
    (b,) = dock(svc, tmp_path / "cam2", "CAM2", [Shot(at(2), data, 1, device="DSJ0002")])
    clock.current = AFTER_2Y
    svc.sweep()
    clock.current += GRACE
    report = svc.sweep(batch=1)
    assert report.deleted == (a.id, b.id) and report.objects_removed == (a.sha256,)
    flags = {i: [e.data["object_removed"] for e in es] for i, es in deleted_entries(svc).items()}
    assert flags == {a.id: [False], b.id: [True]}
    assert not svc.store.has(a.sha256)
    assert svc.verify().ok
    # Nothing is deleted twice.
    clock.current += GRACE
    assert svc.sweep().deleted == ()
    assert len(entries(svc, "retention.deleted")) == 2


def test_object_removed_tells_the_truth_when_a_hold_comes_in_between(
    svc: Service, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(300)
    (a,) = dock(svc, tmp_path / "cam1", "CAM1", [Shot(at(1), data, 1)])
    (b,) = dock(svc, tmp_path / "cam2", "CAM2", [Shot(at(2), data, 1, device="DSJ0002")])
    clock.current = AFTER_2Y
    svc.sweep()
    clock.current += GRACE
    real_plan = svc.retention_plan

    def plan_then_hold(as_of: datetime | None = None) -> Any:
        the_plan = real_plan(as_of)
        # The socket thread holds `a` while the sweep is about to start its batch.
        svc.set_hold(ids=[a.id], reason="came in between")
        return the_plan

    monkeypatch.setattr(svc, "retention_plan", plan_then_hold)
    report = svc.sweep()
    assert report.deleted == (b.id,) and svc.store.has(a.sha256)
    (entry,) = deleted_entries(svc)[b.id]
    assert entry.data["object_removed"] is False


def test_verify_after_deletions_and_a_missing_live_object(
    svc: Service, clock: FixedClock, tmp_path: Path
) -> None:
    gone, kept = one(svc, tmp_path, at(1)), one(svc, tmp_path, at(2))
    svc.tag([kept.id], categories=("obstruction",))
    sweep_through(svc, clock, AFTER_2Y)
    assert rec(svc, gone.id).retention_state == "deleted"
    assert not svc.store.has(gone.sha256)
    report = svc.verify()
    assert report.ok and report.orphans == ()
    assert (report.recordings, report.objects) == (2, 1)

    path = svc.store.object_path(kept.sha256)
    path.unlink()
    problems = svc.verify().problems
    assert [(p.kind, p.detail) for p in problems] == [
        ("store_file_missing", f"recording {kept.id}")
    ]


def test_an_audit_after_a_sweep_checks_only_what_the_store_must_hold(
    svc: Service, clock: FixedClock, tmp_path: Path
) -> None:
    """A deleted recording's object is gone on purpose: a fixity audit of the whole store
    must not report it as damaged (it did, as `unreadable`, after every sweep)."""
    gone, kept = one(svc, tmp_path, at(1)), one(svc, tmp_path, at(2))
    svc.tag([kept.id], categories=("obstruction",))
    sweep_through(svc, clock, AFTER_2Y)
    assert not svc.store.has(gone.sha256)
    report = svc.audit(1.0)
    assert report.ok and report.failures == ()
    assert (report.checked, report.store_objects) == (1, 1)
    [done] = entries(svc, "audit.done")
    assert done.data["failures"] == []


def test_verify_finds_a_tombstone_the_log_never_recorded(
    svc: Service, cfg: Config, tmp_path: Path
) -> None:
    r = one(svc, tmp_path, at(1))
    path = svc.store.object_path(r.sha256)
    svc.close()
    db = sqlite3.connect(cfg.state_dir / "catalog.sqlite")
    with db:
        db.execute(
            "UPDATE recordings SET retention_state = 'deleted', deleted_at = ? WHERE id = ?",
            [isoformat_utc(NOW), r.id],
        )
    db.close()
    path.unlink()
    with Service(cfg, FixedClock(NOW), write=False) as reader:
        problems = reader.verify().problems
    assert [(p.kind, p.where) for p in problems] == [
        ("recording_deleted_unlogged", f"recording {r.id}")
    ]


# -- recovery ------------------------------------------------------------------------------------


def test_an_unlink_that_failed_after_the_commit_is_redone_at_the_next_start(
    cfg: Config, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Service(cfg, clock) as svc:
        r, alive = one(svc, tmp_path, at(1)), one(svc, tmp_path, at(2))
        original = svc.store.object_path(r.sha256).read_bytes()
        svc.tag([alive.id], categories=("evidence",))
        clock.current = AFTER_2Y
        svc.sweep()
        clock.current += GRACE

        def crash(shas: list[str]) -> list[str]:
            raise StoreError("power cut between the commit and the unlink")

        monkeypatch.setattr(svc.store, "remove_objects", crash)
        with pytest.raises(StoreError, match="power cut"):
            svc.sweep()
        monkeypatch.undo()
        # The tombstone and its entry are committed; the bytes are still there.
        assert rec(svc, r.id).retention_state == "deleted"
        assert len(deleted_entries(svc)[r.id]) == 1
        assert svc.store.has(r.sha256)
        report = svc.verify()
        assert report.ok and report.orphans == (r.sha256,)
    with Service(cfg, clock) as svc:
        assert not svc.store.has(r.sha256) and svc.store.has(alive.sha256)
        report = svc.verify()
        assert report.ok and report.orphans == ()
        assert len(deleted_entries(svc)[r.id]) == 1
    # A tombstone's object back on disk (an unlink the file system lost, a restored
    # backup) is listed by verify and removed by the next sweep (a writer's start
    # looks only after a sweep that did not finish: its marker is still there).
    path = cfg.state_dir / "store" / Store.relative_path(r.sha256)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(original)
    path.chmod(0o444)
    with Service(cfg, clock, write=False) as reader:
        report = reader.verify()
        assert report.ok and report.orphans == (r.sha256,)
    with Service(cfg, clock) as svc:
        assert path.exists()
        svc.sweep()
        assert not path.exists()
        report = svc.verify()
        assert report.ok and report.orphans == ()
        assert len(deleted_entries(svc)[r.id]) == 1


# -- policy changes --------------------------------------------------------------------------------


def test_a_policy_change_is_logged_and_moves_routine_tiers(
    config: Config, clock: FixedClock, tmp_path: Path
) -> None:
    daily = quick(config)
    with Service(daily, clock) as svc:
        routine, kept = one(svc, tmp_path, at(1)), one(svc, tmp_path, at(2))
        svc.tag([kept.id], categories=("incident",))
        size = head(svc)
    with Service(daily, clock) as svc:
        assert head(svc) == size, "the same policy again logs nothing"

    minimum = dataclasses.replace(daily, retention=RetentionConfig(preset="minimum"))
    with Service(minimum, clock) as svc:
        policy, updated = entries(svc, after=size)
        assert policy.kind == "retention.policy"
        assert policy.data == {
            "version": "r1/minimum",
            "preset": "minimum",
            "routine_tier": "6m",
            "grace_days": 7,
            "by": "config",
        }
        assert updated.kind == "retention.updated"
        assert updated.data == {
            "reason": "retention policy changed from r1/daily_enforcement",
            "trigger": policy.seq,
            "policy_version": "r1/minimum",
            "tiers": {"6m": [routine.id]},
            "kept": [],
            "by": "config",
        }
        assert (rec(svc, routine.id).tier, rec(svc, routine.id).expires_at) == (
            "6m",
            "2027-05-25T02:00:00Z",
        )
        assert rec(svc, kept.id).tier == "permanent"
        clock.current = datetime(2027, 6, 1, tzinfo=UTC)
        assert svc.sweep().marked == (routine.id,)
        size = head(svc)
    with Service(minimum, clock) as svc:
        assert head(svc) == size
    # Back to two years: the pending recording is no longer expired, it is kept.
    with Service(daily, clock) as svc:
        policy, updated = entries(svc, after=size)
        assert policy.data["version"] == "r1/daily_enforcement"
        assert updated.data["tiers"] == {"2y": [routine.id]}
        assert updated.data["kept"] == [routine.id]
        back = rec(svc, routine.id)
        assert (back.tier, back.retention_state, back.expires_at) == (
            "2y",
            "live",
            routine.expires_at,
        )
        size = head(svc)
    # Only the grace period changes: a new policy entry, no tier moves.
    with Service(quick(config, grace_days=3), clock) as svc:
        (policy,) = entries(svc, after=size)
        assert policy.kind == "retention.policy" and policy.data["grace_days"] == 3
        assert svc.verify().ok


# -- search --------------------------------------------------------------------------------


def test_search_filters(svc: Service, clock: FixedClock, tmp_path: Path) -> None:
    since = NOW - timedelta(days=30)
    svc.assign_device("CAM1", officer="012345", unit="U1", valid_from=since)
    svc.assign_device("CAM2", officer="054321", unit="U2", device_number="No.2", valid_from=since)
    r1, r2 = dock(svc, tmp_path / "cam1", "CAM1", [Shot(at(1), b"one", 1), Shot(at(2), b"two", 2)])
    r3, r4 = dock(
        svc,
        tmp_path / "cam2",
        "CAM2",
        [
            Shot(at(3), b"three", 1, officer="054321", device="DSJ0002"),
            Shot(at(4), b"four", 2, officer="054321", device="DSJ0002"),
        ],
    )
    svc.tag([r1.id], cause="theft at the market", parties=("Zhang San",), categories=("evidence",))
    svc.create_case("C-1", cause="fight", parties=("Li Si",), categories=("review",))
    svc.link_case("C-1", [r2.id])
    svc.set_hold(ids=[r4.id], reason="complaint")
    clock.current = AFTER_2Y
    assert svc.sweep().marked == (r3.id,)

    def found(**kwargs: Any) -> list[int]:
        return [r.id for r in svc.catalog.search(RecordingFilter(**kwargs))]

    everything = [r1.id, r2.id, r3.id, r4.id]
    assert found() == everything
    assert found(unit="U1") == [r1.id, r2.id]
    assert found(unit="U3") == []
    assert found(officer="054321") == [r3.id, r4.id]
    assert found(device="CAM2") == [r3.id, r4.id]
    assert found(device="No.2") == [r3.id, r4.id]
    assert found(device="DSJ0001") == [r1.id, r2.id]
    assert found(start="2026-11-25T02:00:00Z", end="2026-11-25T04:00:00Z") == [r2.id, r3.id]
    assert found(start="2026-11-25T03:30:00Z") == [r4.id]
    assert found(cause="theft") == [r1.id]
    assert found(cause="fight") == [r2.id]  # the case's cause
    assert found(parties=("Zhang San",)) == [r1.id]
    assert found(parties=("Li Si",)) == [r2.id]
    assert found(parties=("Li",)) == []  # parties match whole
    assert found(categories=("evidence",)) == [r1.id]
    assert found(categories=("review",)) == [r2.id]
    assert found(categories=("evidence", "review")) == []
    assert found(case="C-1") == [r2.id]
    assert found(tier="permanent") == [r1.id, r2.id]
    assert found(tier="2y") == [r3.id, r4.id]
    assert found(state="pending_deletion") == [r3.id]
    assert found(state="live") == [r1.id, r2.id, r4.id]
    assert found(unit="U2", state="live") == [r4.id]
    assert found(unlabelled=True) == [r3.id, r4.id]
    assert found(limit=2) == [r1.id, r2.id]
    clock.current += GRACE
    svc.sweep()
    assert found(state="deleted") == [r3.id]
    assert found(unit="U2") == [r3.id, r4.id]  # a tombstone is still found


# -- a deleted recording docked again ------------------------------------------------------


def test_a_file_whose_recording_was_deleted_is_not_wiped_without_a_copy(
    svc: Service, clock: FixedClock, tmp_path: Path
) -> None:
    """A camera that still holds a file (its wipe failed, or was off) is docked after the
    file's recording was deleted by the sweep: nothing may delete the last copy."""
    shot = Shot(at(1), os.urandom(200), 1)
    (r,) = dock(svc, tmp_path / "cam", "CAM1", [shot])
    sweep_through(svc, clock, AFTER_2Y)
    assert rec(svc, r.id).deleted and not svc.store.has(r.sha256)
    camera_file = put(tmp_path / "cam", f"DCIM/100MEDIA/{shot.name}", shot.data)
    report = run_session(
        svc, tmp_path / "cam", "CAM1", make_profile("gat947", svc.config.profiles), wipe=True
    )
    assert report.state == "done"
    svc.close()
    with Service(svc.config, clock) as again:  # a writer's start removes tombstoned objects
        kept = [x for x in again.recordings() if x.sha256 == r.sha256 and not x.deleted]
        assert camera_file.exists() or (kept and again.store.has(r.sha256))


# -- random operations ------------------------------------------------------------------------


def _check_invariants(svc: Service, context: str) -> None:
    """What must hold after any operation: verify passes, tiers and expiries follow the
    policy from the labels, protected recordings are live, each deletion logged once, and
    every recording not deleted has its object."""
    report = svc.verify()
    assert report.ok, (context, report.problems)
    protected = svc.catalog.protected_ids()
    logged = [int(e.data["recording"]) for e in entries(svc, "retention.deleted")]
    assert len(logged) == len(set(logged)), context
    now = isoformat_utc(svc.clock.now())
    for r in svc.recordings():
        if r.deleted:
            assert r.id in logged, context
            continue
        assert r.id not in logged and svc.store.has(r.sha256), (context, r.id)
        if r.id in protected:
            assert r.retention_state == "live", (context, r.id, protected[r.id])
        categories = set(r.categories)
        for no in svc.catalog.cases_of(r.id):
            categories |= set(svc.catalog.case(no)["categories"])  # type: ignore[index]
        tier = "permanent" if categories & LONG_TERM else svc.policy.routine_tier
        keep = parse_utc(r.keep_until) if r.keep_until else None
        end = expiry(tier, parse_utc(r.recorded_end), keep)
        assert (r.tier, r.expires_at) == (tier, isoformat_utc(end) if end else None), context
        if r.retention_state == "pending_deletion":
            assert r.expires_at is not None and r.expires_at <= now, (context, r.id)


OPERATIONS = (
    *("tag", "untag", "case", "link", "unlink", "close", "reopen", "hold", "hold_case"),
    *("release", "restore", "sweep", "sweep", "advance", "advance", "restart"),
)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operations_keep_every_invariant(cfg: Config, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    clock = FixedClock(NOW)
    svc = Service(cfg, clock)
    pool = [rng.randbytes(40) for _ in range(5)]  # few contents: many shared objects
    shots = [Shot(at(0) - timedelta(hours=5 * i), rng.choice(pool), i + 1) for i in range(8)]
    ids = [r.id for r in dock(svc, tmp_path / "cam", "CAM1", shots)]
    cases: list[str] = []
    done: list[str] = []
    categories = ["evidence", "review", "routine", "major_case"]
    try:
        for step in range(70):
            op = rng.choice(OPERATIONS)
            try:
                if op == "tag":
                    picked = tuple(rng.sample(categories, rng.randint(1, 2)))
                    svc.tag(rng.sample(ids, rng.randint(1, 3)), categories=picked)
                elif op == "untag":
                    gone = (rng.choice(categories),)
                    svc.tag(rng.sample(ids, rng.randint(1, 3)), remove_categories=gone, reason="r")
                elif op == "case":
                    cases.append(f"C-{len(cases)}")
                    picked = tuple(rng.sample(categories, rng.randint(0, 1)))
                    svc.create_case(cases[-1], cause="c", categories=picked)
                elif op in ("link", "unlink", "close", "reopen", "hold_case") and cases:
                    no = rng.choice(cases)
                    if op == "link":
                        svc.link_case(no, rng.sample(ids, rng.randint(1, 3)))
                    elif op == "unlink":
                        svc.unlink_case(no, rng.sample(ids, rng.randint(1, 4)), reason="r")
                    elif op == "hold_case":
                        svc.set_hold(case=no, reason="r")
                    else:
                        svc.set_case_state(no, "closed" if op == "close" else "open", reason="r")
                elif op == "hold":
                    svc.set_hold(ids=rng.sample(ids, rng.randint(1, 2)), reason="r")
                elif op == "release":
                    active = [h.hold for h in svc.holds() if h.active]
                    if active:
                        svc.release_hold(rng.choice(active), reason="r")
                elif op == "restore":
                    svc.restore(rng.choice(ids), reason="r")
                elif op == "sweep":
                    svc.sweep(batch=rng.randint(1, 3))
                elif op == "advance":
                    clock.advance(timedelta(days=rng.choice([3, 8, 30, 200, 400])))
                elif op == "restart":
                    svc.close()
                    preset = rng.choice(["minimum", "daily_enforcement"])
                    svc = Service(quick(cfg, preset, grace_days=rng.choice([0, 7])), clock)
            except DockdError as exc:
                op += f" (refused: {exc})"
            done.append(op)
            _check_invariants(svc, f"seed {seed}, step {step}, after {done[-5:]}")
    finally:
        svc.close()
    assert any(op == "sweep" for op in done) and any(op.startswith("tag") for op in done)
