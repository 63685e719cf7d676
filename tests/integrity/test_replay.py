"""Replay of labels, cases, holds and retention from the log (docs/FORMAT.md, schema 5).

A real Service labels, links, holds, sweeps and restores; the replay must
find nothing on that honest catalog. Then each corruption below changes the
SQLite file behind the service's back (dropping the trigger that would
refuse it first) and must be found with its precise kind and place, and
nothing else.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.catalog import Catalog, Recording
from dockd.clock import FixedClock, isoformat_utc, parse_utc
from dockd.config import Config, IngestConfig
from dockd.demo import gat947_name
from dockd.devices.profiles import make_profile
from dockd.integrity.chain import GENESIS, LogEntry, Problem
from dockd.integrity.crosscheck import parse_entries
from dockd.integrity.replay import check_labels_and_retention
from dockd.retention.policy import expiry
from dockd.runner.session import EXIT_OK, run_session
from dockd.service import Service
from tests.conftest import NOW, put

# Sequence numbers the camera wrote: 4 then 7 is a hole to explain.
SEQUENCES = (1, 2, 3, 4, 7)


@dataclass
class Scenario:
    """What the honest history made: recording ids r[1]..r[5], holds, the explained gap."""

    r: dict[int, int] = field(default_factory=dict)
    hold_recordings: int = 0  # on r3, released
    hold_case: int = 0  # on case C2, active
    gap: str = ""
    explanation: int = 0


def _dock(
    svc: Service, config: Config, cam: Path, clips: list[Path], sequences: tuple[int, ...]
) -> dict[int, int]:
    """Dock a camera holding one clip per sequence number, 30 s apart; n -> recording id."""
    start = NOW - timedelta(hours=6)
    for n, seq in enumerate(sequences):
        when = start + timedelta(seconds=30 * n)
        name = gat947_name("012345", "DSJ0001", when, seq, config.profiles.camera_timezone)
        put(cam, f"DCIM/100MEDIA/{name}", clips[n])
    report = run_session(svc, cam, "CAM1", make_profile("gat947", config.profiles), wipe=False)
    assert report.exit_code == EXIT_OK
    by_start = sorted(svc.recordings(), key=lambda rec: rec.recorded_start)
    return {n: rec.id for n, rec in enumerate(by_start, start=1)}


def _make_history(
    svc: Service, clock: FixedClock, config: Config, cam: Path, clips: list[Path]
) -> Scenario:
    """Ingest five clips, then every schema-5 change the service can log.

    Ends with r1 deleted (linked to closed case C1), r2 permanent (evidence),
    r3 deleted after a released hold (and tagged as a tombstone), r4 pending
    deletion again after a restore, r5 kept back from deletion by open case
    C2, which an active hold covers; C3 is an empty case.
    """
    s = Scenario(r=_dock(svc, config, cam, clips, SEQUENCES))
    r = s.r

    svc.tag([r[1]], cause="theft", parties=("Zhang San", "Li Si"), note="first note", actor="po1")
    svc.tag([r[1], r[2]], categories=("routine",), note="second note", actor="po2")
    svc.tag([r[2]], categories=("evidence", "review"), cause="traffic", actor="po1")
    svc.tag([r[2]], remove_categories=("review",), reason="not under review", actor="po1")
    svc.create_case("C1", cause="assault", parties=("Wang Wu",), categories=("routine",))
    svc.link_case("C1", [r[1], r[2]], reason="same incident", actor="po1")
    svc.unlink_case("C1", [r[2]], reason="wrong case", actor="po1")
    svc.create_case("C2", cause="fraud", parties=("Zhao Liu",), actor="po2")
    svc.create_case("C3", cause="nothing linked yet")
    s.hold_recordings = svc.set_hold(ids=[r[3]], reason="complaint", actor="chief").hold
    svc.release_hold(s.hold_recordings, reason="complaint withdrawn", actor="chief")
    svc.set_case_state("C1", "closed", reason="judged", actor="po1")
    svc.set_case_state("C1", "open", reason="appeal", actor="po1")
    svc.set_case_state("C1", "closed", reason="appeal decided", actor="po1")
    (gap,) = svc.interruptions("CAM1")
    s.gap = gap.id
    svc.explain_gap(gap.id, "battery swapped", actor="po1")
    s.explanation = svc.catalog.gap_explanations()[0]["id"]

    # Two years on: every routine recording expires; r2 is permanent.
    clock.advance(timedelta(days=740))
    assert sorted(svc.sweep().marked) == [r[1], r[3], r[4], r[5]]
    svc.restore(r[4], reason="needed for training", actor="chief")
    svc.link_case("C2", [r[5]], reason="fraud footage", actor="po2")  # kept: open case
    s.hold_case = svc.set_hold(case="C2", reason="litigation", actor="chief").hold
    clock.advance(timedelta(days=config.retention.grace_days + 1))
    assert sorted(svc.sweep().deleted) == [r[1], r[3]]
    svc.tag([r[3]], note="deleted on schedule", actor="auditor")  # a tombstone keeps labels
    clock.advance(timedelta(days=config.retention.restore_days + 1))
    assert svc.sweep().marked == (r[4],)
    return s


def _check(catalog: Catalog) -> list[Problem]:
    parsed = parse_entries(list(catalog.log_rows()))
    return check_labels_and_retention(
        catalog.recordings(),
        catalog.cases(),
        catalog.case_links(),
        catalog.holds(),
        catalog.hold_items(),
        catalog.gap_explanations(),
        parsed,
    )


def _found(catalog: Catalog) -> set[tuple[str, str]]:
    return {(p.kind, p.where) for p in _check(catalog)}


# -- the honest history ------------------------------------------------------------------


def test_honest_history_replays_without_problems(
    tmp_path: Path, service: Service, clock: FixedClock, config: Config, clip_bank: list[Path]
) -> None:
    s = _make_history(service, clock, config, tmp_path / "cam", clip_bank)
    r = s.r
    recs = {rec.id: rec for rec in service.recordings()}
    # The history reached every state the replay must follow.
    assert [recs[r[n]].retention_state for n in range(1, 6)] == [
        "deleted", "live", "deleted", "pending_deletion", "live",
    ]  # fmt: skip
    assert recs[r[2]].tier == "permanent" and recs[r[2]].expires_at is None
    assert recs[r[2]].categories == ("evidence", "routine")
    assert recs[r[4]].keep_until is not None
    assert [n["text"] for n in recs[r[1]].notes] == ["first note", "second note"]
    assert [n["text"] for n in recs[r[3]].notes] == ["deleted on schedule"]
    assert {c["no"]: c["state"] for c in service.catalog.cases()} == {
        "C1": "closed", "C2": "open", "C3": "open",
    }  # fmt: skip
    holds = {h["id"]: h for h in service.catalog.holds()}
    assert holds[s.hold_recordings]["released_at"] is not None
    assert holds[s.hold_case]["released_at"] is None
    kinds = [LogEntry.from_bytes(row.raw).kind for row in service.catalog.log_rows()]
    for kind in (
        "recording.tagged", "case.created", "case.linked", "case.unlinked", "case.closed",
        "case.reopened", "hold.set", "hold.released", "retention.updated",
        "retention.pending", "retention.deleted", "retention.restored", "gap.explained",
    ):  # fmt: skip
        assert kind in kinds, kind
    kept = [
        LogEntry.from_bytes(row.raw).data["kept"]
        for row in service.catalog.log_rows()
        if LogEntry.from_bytes(row.raw).kind == "retention.updated"
    ]
    assert [r[5]] in kept, "linking r5 to an open case took it back from pending deletion"

    assert _check(service.catalog) == []


def test_policy_change_at_writer_start_is_replayed(
    tmp_path: Path, config: Config, clock: FixedClock, clip_bank: list[Path]
) -> None:
    """A writer started with another preset re-tiers every recording (retention.updated)."""
    with Service(config, clock) as svc:
        r = _dock(svc, config, tmp_path / "cam", clip_bank, (1, 2))
        svc.tag([r[1]], categories=("evidence",))
        ingested = {rec.id: (rec.tier, rec.expires_at) for rec in svc.recordings()}
    assert ingested[r[2]][0] == "2y"
    retention = dataclasses.replace(config.retention, preset="minimum")
    with Service(dataclasses.replace(config, retention=retention), clock) as svc:
        assert {rec.id: rec.tier for rec in svc.recordings()} == {r[1]: "permanent", r[2]: "6m"}
        assert _check(svc.catalog) == []
        # Back to what its ingest entry said: the later retention.updated wins.
        svc.catalog.db.execute(
            "UPDATE recordings SET tier = ?, expires_at = ? WHERE id = ?",
            [*ingested[r[2]], r[2]],
        )
        svc.catalog.db.conn.commit()
        assert _found(svc.catalog) == {("retention_tier_changed", f"recording {r[2]}")}


# -- corruptions ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def honest(
    tmp_path_factory: pytest.TempPathFactory, clip_bank: list[Path]
) -> tuple[Path, Scenario]:
    """One honest history per module (its catalog file and ids); each test corrupts a copy."""
    root = tmp_path_factory.mktemp("honest")
    config = dataclasses.replace(
        Config(),
        state_dir=root / "state",
        ingest=IngestConfig(change_retry_delay=0.0, min_free_bytes=0),
    )
    clock = FixedClock(NOW)
    with Service(config, clock) as svc:
        scenario = _make_history(svc, clock, config, root / "cam", clip_bank)
    return config.state_dir / "catalog.sqlite", scenario


@pytest.fixture
def corrupt(
    tmp_path: Path, honest: tuple[Path, Scenario]
) -> Iterator[Callable[[list[str]], Catalog]]:
    """Run SQL on a copy of the honest catalog, then open it as dockd would."""
    source, _ = honest
    target = tmp_path / "catalog.sqlite"
    for path in source.parent.glob(source.name + "*"):
        shutil.copyfile(path, tmp_path / path.name)
    opened: list[Catalog] = []

    def run(statements: list[str]) -> Catalog:
        conn = sqlite3.connect(target)
        for sql in statements:
            conn.execute(sql)
        conn.commit()
        conn.close()
        opened.append(Catalog(target))
        return opened[-1]

    yield run
    for catalog in opened:
        catalog.close()


def test_the_copy_of_the_honest_catalog_is_clean(
    corrupt: Callable[[list[str]], Catalog],
) -> None:
    assert _check(corrupt([])) == []


SOON = "2027-01-01T00:00:00Z"

# name -> scenario -> (SQL, the (kind, where) problems it must cause, and no other)
Corruption = Callable[[Scenario], tuple[list[str], set[tuple[str, str]]]]
CORRUPTIONS: dict[str, Corruption] = {
    # -- labels
    "cause_changed": lambda s: (
        [f"UPDATE recordings SET cause = 'littering' WHERE id = {s.r[1]}"],
        {("catalog_label_changed", f"recording {s.r[1]}")},
    ),
    "cause_given_to_an_unlabelled_recording": lambda s: (
        [f"UPDATE recordings SET cause = 'theft' WHERE id = {s.r[4]}"],
        {("catalog_label_changed", f"recording {s.r[4]}")},
    ),
    "category_added": lambda s: (
        [f"""UPDATE recordings SET categories = '["evidence"]' WHERE id = {s.r[4]}"""],
        {("catalog_label_changed", f"recording {s.r[4]}")},
    ),
    "category_removed": lambda s: (
        [f"""UPDATE recordings SET categories = '["routine"]' WHERE id = {s.r[2]}"""],
        {("catalog_label_changed", f"recording {s.r[2]}")},
    ),
    "party_removed": lambda s: (
        [f"""UPDATE recordings SET parties = '["Li Si"]' WHERE id = {s.r[1]}"""],
        {("catalog_label_changed", f"recording {s.r[1]}")},
    ),
    "note_edited": lambda s: (
        [
            "UPDATE recordings SET notes = json_set(notes, '$[0].text', 'nothing happened') "
            f"WHERE id = {s.r[1]}"
        ],
        {("catalog_label_changed", f"recording {s.r[1]}")},
    ),
    "note_dropped_from_a_tombstone": lambda s: (
        [f"UPDATE recordings SET notes = '[]' WHERE id = {s.r[3]}"],
        {("catalog_label_changed", f"recording {s.r[3]}")},
    ),
    # -- tier and expiry
    "tier_shortened": lambda s: (
        [f"UPDATE recordings SET tier = '6m', expires_at = '{SOON}' WHERE id = {s.r[2]}"],
        {("retention_tier_changed", f"recording {s.r[2]}")},
    ),
    "expires_at_brought_forward": lambda s: (
        [f"UPDATE recordings SET expires_at = '{SOON}' WHERE id = {s.r[5]}"],
        {("retention_tier_changed", f"recording {s.r[5]}")},
    ),
    "keep_until_dropped": lambda s: (
        [f"UPDATE recordings SET keep_until = NULL WHERE id = {s.r[4]}"],
        {("retention_tier_changed", f"recording {s.r[4]}")},
    ),
    "tombstone_tier_rewritten": lambda s: (
        [f"UPDATE recordings SET tier = 'permanent', expires_at = NULL WHERE id = {s.r[1]}"],
        {("retention_tier_changed", f"recording {s.r[1]}")},
    ),
    # -- retention state
    "recording_hidden_as_deleted": lambda s: (
        [
            "UPDATE recordings SET retention_state = 'deleted', "
            f"deleted_at = '2029-01-01T00:00:00Z' WHERE id = {s.r[2]}"
        ],
        {("recording_deleted_unlogged", f"recording {s.r[2]}")},
    ),
    "pending_recording_hidden_as_deleted": lambda s: (
        [f"UPDATE recordings SET retention_state = 'deleted' WHERE id = {s.r[4]}"],
        {("recording_deleted_unlogged", f"recording {s.r[4]}")},
    ),
    "tombstone_revived": lambda s: (
        [
            "DROP TRIGGER recordings_tombstone_final",
            "UPDATE recordings SET retention_state = 'live', deleted_at = NULL, "
            f"pending_since = NULL WHERE id = {s.r[1]}",
        ],
        {("recording_undeleted", f"recording {s.r[1]}")},
    ),
    "pending_deletion_cancelled": lambda s: (
        [
            "UPDATE recordings SET retention_state = 'live', pending_since = NULL "
            f"WHERE id = {s.r[4]}"
        ],
        {("retention_state_changed", f"recording {s.r[4]}")},
    ),
    "live_recording_marked_pending": lambda s: (
        [
            "UPDATE recordings SET retention_state = 'pending_deletion', "
            f"pending_since = '2028-01-01T00:00:00Z' WHERE id = {s.r[5]}"
        ],
        {("retention_state_changed", f"recording {s.r[5]}")},
    ),
    "grace_period_shortened": lambda s: (
        [f"UPDATE recordings SET pending_since = '2028-01-01T00:00:00Z' WHERE id = {s.r[4]}"],
        {("retention_state_changed", f"recording {s.r[4]}")},
    ),
    "deletion_time_rewritten": lambda s: (
        [f"UPDATE recordings SET deleted_at = '2030-01-01T00:00:00Z' WHERE id = {s.r[3]}"],
        {("retention_state_changed", f"recording {s.r[3]}")},
    ),
    # -- cases
    "case_cause_edited": lambda s: (
        ["UPDATE cases SET cause = 'trespass' WHERE no = 'C1'"],
        {("case_changed", "case C1")},
    ),
    "case_category_added": lambda s: (
        ["""UPDATE cases SET categories = '["major_case"]' WHERE no = 'C3'"""],
        {("case_changed", "case C3")},
    ),
    "case_closed_by_sql": lambda s: (
        ["UPDATE cases SET state = 'closed', closed_at = '2029-01-01T00:00:00Z' WHERE no = 'C2'"],
        {("case_changed", "case C2")},
    ),
    "case_reopened_by_sql": lambda s: (
        ["UPDATE cases SET state = 'open', closed_at = NULL WHERE no = 'C1'"],
        {("case_changed", "case C1")},
    ),
    "case_inserted": lambda s: (
        [
            "INSERT INTO cases (no, cause, parties, categories, state, created_at, log_seq) "
            "VALUES ('C9', 'made up', '[]', '[]', 'open', '2026-11-25T09:00:00Z', 1)"
        ],
        {("case_unlogged", "case C9")},
    ),
    "case_deleted": lambda s: (
        ["DROP TRIGGER cases_no_delete", "DELETE FROM cases WHERE no = 'C3'"],
        {("case_missing", "case C3")},
    ),
    # -- case links
    "case_link_removed": lambda s: (
        [f"DELETE FROM case_links WHERE case_no = 'C2' AND recording_id = {s.r[5]}"],
        {("case_link_missing", f"case C2, recording {s.r[5]}")},
    ),
    "unlinked_recording_linked_again": lambda s: (
        [
            "INSERT INTO case_links (case_no, recording_id, linked_at, log_seq) "
            f"SELECT 'C1', {s.r[2]}, linked_at, log_seq FROM case_links WHERE case_no = 'C1'"
        ],
        {("case_link_unlogged", f"case C1, recording {s.r[2]}")},
    ),
    "case_link_moved_to_another_case": lambda s: (
        [f"UPDATE case_links SET case_no = 'C3' WHERE recording_id = {s.r[5]}"],
        {
            ("case_link_missing", f"case C2, recording {s.r[5]}"),
            ("case_link_unlogged", f"case C3, recording {s.r[5]}"),
        },
    ),
    "case_link_redated": lambda s: (
        [f"UPDATE case_links SET linked_at = '2026-01-01T00:00:00Z' WHERE recording_id = {s.r[1]}"],
        {("case_link_changed", f"case C1, recording {s.r[1]}")},
    ),
    # -- holds
    "hold_deleted": lambda s: (
        ["DROP TRIGGER holds_no_delete", f"DELETE FROM holds WHERE id = {s.hold_case}"],
        {("hold_missing", f"hold {s.hold_case}")},
    ),
    "hold_released_by_sql": lambda s: (
        [
            "UPDATE holds SET released_at = '2029-01-01T00:00:00Z', released_by = 'x', "
            f"release_reason = 'no longer needed' WHERE id = {s.hold_case}"
        ],
        {("hold_released_unlogged", f"hold {s.hold_case}")},
    ),
    "released_hold_made_active_again": lambda s: (
        [
            "DROP TRIGGER holds_release_once",
            "UPDATE holds SET released_at = NULL, released_by = NULL, release_reason = NULL, "
            f"release_log_seq = NULL WHERE id = {s.hold_recordings}",
        ],
        {("hold_release_missing", f"hold {s.hold_recordings}")},
    ),
    "hold_reason_edited": lambda s: (
        [f"UPDATE holds SET reason = 'routine' WHERE id = {s.hold_case}"],
        {("hold_changed", f"hold {s.hold_case}")},
    ),
    "hold_moved_to_another_case": lambda s: (
        [f"UPDATE holds SET case_no = 'C3' WHERE id = {s.hold_case}"],
        {("hold_changed", f"hold {s.hold_case}")},
    ),
    "release_reason_edited": lambda s: (
        [
            "DROP TRIGGER holds_release_once",
            f"UPDATE holds SET release_reason = 'expired' WHERE id = {s.hold_recordings}",
        ],
        {("hold_changed", f"hold {s.hold_recordings}")},
    ),
    "recording_added_to_a_hold": lambda s: (
        [f"INSERT INTO hold_items (hold_id, recording_id) VALUES ({s.hold_recordings}, {s.r[2]})"],
        {("hold_changed", f"hold {s.hold_recordings}")},
    ),
    "recording_taken_out_of_a_hold": lambda s: (
        [
            "DROP TRIGGER hold_items_no_delete",
            f"DELETE FROM hold_items WHERE recording_id = {s.r[3]}",
        ],
        {("hold_changed", f"hold {s.hold_recordings}")},
    ),
    "hold_inserted": lambda s: (
        [
            "INSERT INTO holds (id, case_no, reason, set_at, log_seq) "
            "VALUES (99, NULL, 'made up', '2026-11-25T09:00:00Z', 1)",
            f"INSERT INTO hold_items (hold_id, recording_id) VALUES (99, {s.r[4]})",
        ],
        {("hold_unlogged", "hold 99")},
    ),
    # -- gap explanations
    "gap_explanation_edited": lambda s: (
        [
            "DROP TRIGGER gap_explanations_no_update",
            f"UPDATE gap_explanations SET text = 'no idea' WHERE id = {s.explanation}",
        ],
        {("gap_explanation_changed", f"gap explanation {s.explanation}")},
    ),
    "gap_explanation_deleted": lambda s: (
        [
            "DROP TRIGGER gap_explanations_no_delete",
            f"DELETE FROM gap_explanations WHERE id = {s.explanation}",
        ],
        {("gap_explanation_missing", f"gap {s.gap}")},
    ),
    "gap_explanation_forged": lambda s: (
        [
            "INSERT INTO gap_explanations (id, gap, device_serial, text, by, at, log_seq) "
            f"SELECT 77, gap, device_serial, 'also fine', by, at, 1 FROM gap_explanations "
            f"WHERE id = {s.explanation}"
        ],
        {("gap_explanation_unlogged", "gap explanation 77")},
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_is_found_precisely(
    name: str, honest: tuple[Path, Scenario], corrupt: Callable[[list[str]], Catalog]
) -> None:
    _, scenario = honest
    statements, expected = CORRUPTIONS[name](scenario)
    assert _found(corrupt(statements)) == expected


def test_detail_names_the_field_and_both_values(
    honest: tuple[Path, Scenario], corrupt: Callable[[list[str]], Catalog]
) -> None:
    _, s = honest
    catalog = corrupt(
        [f"UPDATE recordings SET cause = 'littering', tier = '6m' WHERE id = {s.r[1]}"]
    )
    details = {p.kind: p.detail for p in _check(catalog)}
    assert details["catalog_label_changed"] == (
        'cause is "littering" in the catalog, the log gives "theft"'
    )
    assert details["retention_tier_changed"] == ('tier is "6m" in the catalog, the log gives "2y"')


# -- the replay itself, on hand-made entries -------------------------------------------------


def _recording(rid: int, log_seq: int, end: str, **labels: Any) -> Recording:
    return Recording(
        id=rid, sha256=f"{rid:064x}", size=1, source_path=b"a", source_path_text="a",
        source_mtime_ns=0, store_path="s", device_serial="CAM1", device_number=None,
        profile="gat947", officer=None, sequence=None, recorded_start=end, recorded_end=end,
        time_source="file_name", clock_offset_s=None, ingested_at=end, deadline=end,
        late=False, flags=(), media={}, session_id=None, log_seq=log_seq, **labels,
    )  # fmt: skip


def _entries(*items: tuple[str, dict[str, Any]]) -> dict[int, LogEntry]:
    return {
        seq: LogEntry(seq, isoformat_utc(NOW + timedelta(seconds=seq)), kind, data, GENESIS)
        for seq, (kind, data) in enumerate(items, start=1)
    }


END = "2026-08-31T10:00:00.500000Z"


def test_pre_schema_5_ingest_gets_its_tier_from_the_first_retention_update() -> None:
    """Old ingest entries have no tier: NULL until a retention.updated gives one."""
    parsed = _entries(
        ("recording.ingested", {"recording": 1, "recorded_end": END}),
        ("recording.ingested", {"recording": 2, "recorded_end": END}),
        ("retention.updated", {"tiers": {"6m": [1]}, "kept": []}),
    )
    # 31 August 10:00 UTC is 30 August on the UTC-12 calendar: + 6 months is "30 February",
    # which rolls to 1 March there (2 March 10:00 UTC), + 1 h summer time, rounded up.
    expected = isoformat_utc(expiry("6m", parse_utc(END)) or NOW)
    assert expected == "2027-03-02T11:00:01Z"
    honest = [
        _recording(1, 1, END, tier="6m", expires_at=expected),
        _recording(2, 2, END),
    ]
    assert check_labels_and_retention(honest, [], [], [], [], [], parsed) == []
    untiered = [_recording(1, 1, END), _recording(2, 2, END, tier="2y", expires_at=expected)]
    found = check_labels_and_retention(untiered, [], [], [], [], [], parsed)
    assert {(p.kind, p.where) for p in found} == {
        ("retention_tier_changed", "recording 1"),
        ("retention_tier_changed", "recording 2"),
    }


def test_keep_until_extends_the_recomputed_expiry() -> None:
    keep = "2031-01-01T00:00:00.250000Z"
    parsed = _entries(
        ("recording.ingested", {"recording": 1, "recorded_end": END, "tier": "2y",
                                "expires_at": "2028-08-31T10:00:01Z"}),
        ("retention.pending", {"recordings": [1]}),
        ("retention.restored", {"recording": 1, "keep_until": keep}),
        ("retention.updated", {"tiers": {"2y": [1]}, "kept": []}),
    )  # fmt: skip
    row = _recording(1, 1, END, tier="2y", expires_at="2031-01-01T00:00:01Z", keep_until=keep)
    assert check_labels_and_retention([row], [], [], [], [], [], parsed) == []
    stale = _recording(1, 1, END, tier="2y", expires_at="2028-08-31T10:00:01Z", keep_until=keep)
    found = check_labels_and_retention([stale], [], [], [], [], [], parsed)
    assert [(p.kind, p.where) for p in found] == [("retention_tier_changed", "recording 1")]
    assert "expires_at" in found[0].detail and "keep_until" not in found[0].detail


def test_deletion_is_final_in_the_replay() -> None:
    """A kept/restored/pending entry after retention.deleted does not revive the row."""
    parsed = _entries(
        ("recording.ingested", {"recording": 1, "recorded_end": END, "tier": "6m",
                                "expires_at": "2027-03-01T10:00:01Z"}),
        ("retention.pending", {"recordings": [1]}),
        ("retention.deleted", {"recording": 1}),
        ("retention.updated", {"tiers": {}, "kept": [1]}),
        ("retention.pending", {"recordings": [1]}),
    )  # fmt: skip
    row = _recording(
        1, 1, END, tier="6m", expires_at="2027-03-01T10:00:01Z", retention_state="deleted",
        pending_since="2026-11-25T09:00:02Z", deleted_at="2026-11-25T09:00:03Z",
    )  # fmt: skip
    assert check_labels_and_retention([row], [], [], [], [], [], parsed) == []


def test_rows_without_an_ingest_entry_are_left_to_the_row_cross_check() -> None:
    parsed = _entries(("recording.tagged", {"recordings": [1], "cause": "x"}))
    row = _recording(1, 1, END, cause="y", retention_state="deleted")
    assert check_labels_and_retention([row], [], [], [], [], [], parsed) == []


def test_replay_is_linear_in_the_number_of_recordings() -> None:
    """Verify runs over a million recordings: one pass, not a scan per entry.

    50,000 recordings tagged, re-tiered, linked and held by single entries
    take about a second; anything quadratic takes many minutes.
    """
    n = 50_000
    items: list[tuple[str, dict[str, Any]]] = [
        ("recording.ingested", {"recording": i, "recorded_end": END, "tier": "2y",
                                "expires_at": "2028-08-31T10:00:01Z"})
        for i in range(1, n + 1)
    ]  # fmt: skip
    ids = list(range(1, n + 1))
    items += [
        ("recording.tagged", {"recordings": ids, "cause": "c", "parties_added": ["p"],
                              "categories_added": ["routine"], "categories_removed": [],
                              "note": None}),
        ("retention.updated", {"tiers": {"6m": ids[:10_000]}, "kept": []}),
        ("retention.updated", {"tiers": {"6m": ids[10_000:]}, "kept": []}),
        ("case.created", {"case": "C", "cause": "c", "parties": [], "categories": []}),
        ("case.linked", {"case": "C", "recordings": ids}),
        ("hold.set", {"hold": 1, "case": None, "recordings": ids, "reason": "r"}),
    ]  # fmt: skip
    parsed = _entries(*items)
    six = isoformat_utc(expiry("6m", parse_utc(END)) or NOW)
    recordings = [
        _recording(i, i, END, cause="c", parties=("p",), categories=("routine",), tier="6m",
                   expires_at=six)
        for i in ids
    ]  # fmt: skip
    case_seq, link_seq, hold_seq = n + 4, n + 5, n + 6
    cases: list[dict[str, Any]] = [
        {"no": "C", "cause": "c", "parties": [], "categories": [], "state": "open",
         "created_at": parsed[case_seq].time, "closed_at": None, "log_seq": case_seq}
    ]  # fmt: skip
    links = [
        {"case_no": "C", "recording_id": i, "linked_at": parsed[link_seq].time,
         "log_seq": link_seq}
        for i in ids
    ]  # fmt: skip
    holds = [
        {"id": 1, "case_no": None, "reason": "r", "set_at": parsed[hold_seq].time,
         "set_by": None, "log_seq": hold_seq, "released_at": None, "released_by": None,
         "release_reason": None, "release_log_seq": None}
    ]  # fmt: skip
    items_rows = [{"hold_id": 1, "recording_id": i} for i in ids]
    started = time.perf_counter()
    found = check_labels_and_retention(recordings, cases, links, holds, items_rows, [], parsed)
    elapsed = time.perf_counter() - started
    assert found == []
    assert elapsed < 10.0, f"{elapsed:.1f}s for {n} recordings"
