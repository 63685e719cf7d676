"""The device registry through the real Service (R2 labels, R1 overdue, invariants 3 and 7).

Each recording is attributed by the assignment in force when it was
*recorded* (the time in its file name), never by when it was docked; a
device nobody is on record for is still ingested (invariant 5) and flagged;
every registry change is one log entry (invariant 3), and `verify` finds an
assignment row that was altered, removed or forged behind the service's back.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.catalog import Recording
from dockd.clock import FixedClock, isoformat_utc
from dockd.config import Config
from dockd.demo import gat947_name
from dockd.devices.identity import DeviceHealth, DeviceIdentity
from dockd.devices.profiles import Profile, make_profile
from dockd.devices.registry import Assignment
from dockd.errors import DockdError
from dockd.integrity.chain import LogEntry
from dockd.runner.session import EXIT_OK, SessionReport, run_session
from dockd.service import FLAG_UNASSIGNED, REGISTRY_FLAGS, Service
from tests.conftest import NOW, put

NAME_OFFICER = "012345"  # what the camera writes into its file names
NAME_DEVICE = "DSJ0001"


def _gat(config: Config) -> Profile:
    return make_profile("gat947", config.profiles)


def _clip_name(config: Config, start: datetime, seq: int) -> str:
    return gat947_name(NAME_OFFICER, NAME_DEVICE, start, seq, config.profiles.camera_timezone)


def _camera(root: Path, config: Config, clips: list[Path], starts: list[datetime]) -> Path:
    """A camera directory holding one real clip per start time, named as a GA/T 947 camera."""
    for seq, (clip, start) in enumerate(zip(clips, starts, strict=True), start=1):
        put(root, f"DCIM/100MEDIA/{_clip_name(config, start, seq)}", clip)
    return root


def _dock(svc: Service, cam: Path, config: Config, **kw: Any) -> SessionReport:
    return run_session(svc, cam, "CAM1", _gat(config), wipe=kw.pop("wipe", False), **kw)


def _by_start(svc: Service) -> dict[str, Recording]:
    return {r.recorded_start: r for r in svc.recordings()}


def _entry(svc: Service, seq: int) -> LogEntry:
    raw = svc.log_entry(seq)
    assert raw is not None, f"log entry {seq} is missing"
    return LogEntry.from_bytes(raw)


def _entries(svc: Service, kind: str) -> list[LogEntry]:
    head = svc.catalog.head()[0]
    return [e for e in (_entry(svc, s) for s in range(1, head + 1)) if e.kind == kind]


def _problems(svc: Service) -> set[tuple[str, str]]:
    return {(p.kind, p.where) for p in svc.verify().problems}


# -- attribution by recording time -----------------------------------------------------


def test_recordings_are_attributed_by_recording_time_not_docking_time(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    """R2: the officer who had the camera when a clip was recorded, across a hand-over."""
    t0, t1 = NOW - timedelta(hours=10), NOW - timedelta(hours=4)
    first, _ = service.assign_device("CAM1", officer="A", unit="U1", valid_from=t0)
    second, _ = service.assign_device("CAM1", officer="B", unit="U2", valid_from=t1)
    before = [t1 - timedelta(hours=3), t1 - timedelta(seconds=1)]
    after = [t1, t1 + timedelta(hours=2)]  # valid_from is inclusive
    cam = _camera(tmp_path / "cam", config, clip_bank[:4], before + after)
    # Docked after both recordings, while B holds the camera.
    report = _dock(service, cam, config)
    assert report.exit_code == EXIT_OK
    recs = _by_start(service)
    assert len(recs) == 4
    for start, (officer, unit, assignment) in [
        *((s, ("A", "U1", first.id)) for s in before),
        *((s, ("B", "U2", second.id)) for s in after),
    ]:
        rec = recs[isoformat_utc(start)]
        assert (rec.officer, rec.unit) == (officer, unit), start
        assert FLAG_UNASSIGNED not in rec.flags
        assert rec.name_officer == NAME_OFFICER, "what the name said is kept beside it"
        assert rec.device_number == NAME_DEVICE
        data = _entry(service, rec.log_seq).data
        assert (data["officer"], data["unit"], data["assignment"]) == (officer, unit, assignment)
    assert service.verify().ok


def test_docking_much_later_changes_nothing(
    tmp_path: Path, config: Config, clock: FixedClock, clip_bank: list[Path]
) -> None:
    """The same clips docked days after a further hand-over keep their recording-time owner."""
    t1 = NOW - timedelta(hours=4)
    clock.advance(timedelta(days=3))
    with Service(config, clock) as svc:
        svc.assign_device("CAM1", officer="A", unit="U1", valid_from=NOW - timedelta(days=1))
        svc.assign_device("CAM1", officer="B", unit="U2", valid_from=t1)
        svc.assign_device("CAM1", officer="C", unit="U3", valid_from=NOW + timedelta(days=1))
        cam = _camera(tmp_path / "cam", config, clip_bank[:2], [t1 - timedelta(hours=1), t1])
        _dock(svc, cam, config)
        recs = _by_start(svc)
        assert recs[isoformat_utc(t1 - timedelta(hours=1))].officer == "A"
        assert recs[isoformat_utc(t1)].officer == "B"
        assert "late" in recs[isoformat_utc(t1)].flags, "docked 3 days on: late, still B's"


# -- no assignment ---------------------------------------------------------------------


def test_unassigned_device_is_ingested_flagged_and_exits_0(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    """Invariant 5 + R8: nobody on record is flagged for supervisors, never rejected."""
    starts = [NOW - timedelta(hours=2), NOW - timedelta(hours=1)]
    cam = _camera(tmp_path / "cam", config, clip_bank[:2], starts)
    report = _dock(service, cam, config, wipe=True)
    assert FLAG_UNASSIGNED in REGISTRY_FLAGS
    assert report.exit_code == EXIT_OK, "a registry flag does not fail the docking"
    counts = report.counts()
    assert counts["ingested"] == 2 and counts["flagged"] == 0 and counts["wiped"] == 2
    for outcome in report.outcomes:
        rec = outcome.recording
        assert rec.flags == (FLAG_UNASSIGNED,)
        assert (rec.officer, rec.unit, rec.device_number) == (NAME_OFFICER, None, NAME_DEVICE)
        data = _entry(service, rec.log_seq).data
        assert data["assignment"] is None and data["flags"] == [FLAG_UNASSIGNED]
    assert service.verify().ok


def test_clip_outside_every_assignment_is_flagged(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    """Assigned from T0 on: a clip recorded before T0 is nobody's."""
    t0 = NOW - timedelta(hours=3)
    service.assign_device("CAM1", officer="A", unit="U1", valid_from=t0)
    early, late = t0 - timedelta(seconds=1), t0
    _dock(service, _camera(tmp_path / "cam", config, clip_bank[:2], [early, late]), config)
    recs = _by_start(service)
    assert recs[isoformat_utc(early)].flags == (FLAG_UNASSIGNED,)
    assert recs[isoformat_utc(early)].officer == NAME_OFFICER
    assert recs[isoformat_utc(late)].flags == ()
    assert recs[isoformat_utc(late)].officer == "A"


# -- re-attribution --------------------------------------------------------------------


def test_later_assignment_reattributes_and_unassignment_restores(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    """R2 + invariant 3: an assignment registered after docking fixes past labels, in the log."""
    starts = [NOW - timedelta(hours=h) for h in (8, 3, 2)]
    _dock(service, _camera(tmp_path / "cam", config, clip_bank[:3], starts), config)
    old, mid, new = (_by_start(service)[isoformat_utc(s)] for s in starts)
    assert all(FLAG_UNASSIGNED in r.flags for r in (old, mid, new))

    issued, changed = service.assign_device(
        "CAM1",
        officer="A",
        unit="U1",
        device_number="DSJ0042",
        valid_from=NOW - timedelta(hours=5),
        reason="handed out at 04:00",
        actor="sergeant",
    )
    assert changed == [mid.id, new.id]
    entry = _entry(service, issued.log_seq)
    assert entry.kind == "device.assigned"
    assert entry.data["reattributed"] == [mid.id, new.id]
    for rec_id in changed:
        rec = service.recording(rec_id)
        assert rec is not None
        assert (rec.officer, rec.unit, rec.device_number) == ("A", "U1", "DSJ0042")
        assert FLAG_UNASSIGNED not in rec.flags
        assert rec.name_officer == NAME_OFFICER and rec.name_device == NAME_DEVICE
    untouched = service.recording(old.id)
    assert untouched == old, "a recording outside the period is not touched"

    returned, changed = service.assign_device(
        "CAM1", officer=None, unit=None, valid_from=NOW - timedelta(hours=2, minutes=30)
    )
    assert changed == [new.id]
    assert _entry(service, returned.log_seq).data["reattributed"] == [new.id]
    back = service.recording(new.id)
    assert back is not None
    assert (back.officer, back.unit, back.device_number) == (NAME_OFFICER, None, NAME_DEVICE)
    assert FLAG_UNASSIGNED in back.flags
    still = service.recording(mid.id)
    assert still is not None and still.officer == "A", "before the return, A still had it"
    # Only attribution changed: the evidence facts still match their entries.
    assert service.verify().ok


def test_reassignment_keeps_other_flags(tmp_path: Path, service: Service, config: Config) -> None:
    """Re-attribution swaps only the registry flag; footage flags stay."""
    start = NOW - timedelta(hours=1)
    cam = tmp_path / "cam"
    put(cam, f"DCIM/{_clip_name(config, start, 1)}", b"not a movie")
    _dock(service, cam, config)
    (rec,) = service.recordings()
    assert set(rec.flags) == {FLAG_UNASSIGNED, "unreadable_media"}
    service.assign_device("CAM1", officer="A", unit="U1", valid_from=start)
    after = service.recording(rec.id)
    assert after is not None and after.flags == ("unreadable_media",)


def test_an_assignment_that_changes_nothing_reattributes_nothing(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    start = NOW - timedelta(hours=1)
    service.assign_device("CAM1", officer="A", unit="U1", valid_from=start)
    _dock(service, _camera(tmp_path / "cam", config, clip_bank[:1], [start]), config)
    again, changed = service.assign_device("CAM1", officer="A", unit="U1", valid_from=start)
    assert changed == []
    assert _entry(service, again.log_seq).data["reattributed"] == []
    # Another device's assignment never touches CAM1's recordings.
    _, other = service.assign_device("CAM2", officer="B", unit="U2", valid_from=start)
    assert other == []
    assert service.recordings()[0].officer == "A"


# -- the log and bad input -------------------------------------------------------------


def test_every_registry_change_is_one_log_entry(service: Service) -> None:
    """Invariant 3: one device.assigned entry per change, carrying the whole assignment."""
    valid_from, valid_to = NOW - timedelta(days=1), NOW + timedelta(days=1)
    seq_before = service.catalog.head()[0]
    row, changed = service.assign_device(
        "CAM1",
        officer="A",
        unit="U1",
        device_number="DSJ0042",
        valid_from=valid_from,
        valid_to=valid_to,
        reason="shift 7",
        actor="admin",
    )
    assert service.catalog.head()[0] == seq_before + 1
    entry = _entry(service, seq_before + 1)
    assert entry.kind == "device.assigned" and row.log_seq == entry.seq
    data = entry.data
    assert data["assignment"] == row.id
    assert data["serial"] == "CAM1"
    assert (data["officer"], data["unit"], data["device_number"]) == ("A", "U1", "DSJ0042")
    assert data["valid_from"] == isoformat_utc(valid_from)
    assert data["valid_to"] == isoformat_utc(valid_to)
    assert data["created_at"] == isoformat_utc(NOW)
    assert (data["reason"], data["by"], data["reattributed"]) == ("shift 7", "admin", [])
    assert changed == []
    # The stored row is what the entry says.
    assert service.catalog.assignments("CAM1") == [row]
    assert row == Assignment(
        row.id, "CAM1", "A", "U1", "DSJ0042", valid_from, valid_to, NOW, entry.seq
    )

    back, _ = service.assign_device("CAM1", officer=None, unit=None)
    assert service.catalog.head()[0] == seq_before + 2
    data = _entry(service, back.log_seq).data
    assert data["officer"] is None and data["valid_from"] == isoformat_utc(NOW)
    assert data["valid_to"] is None
    assert back.id == row.id + 1
    assert [e.seq for e in _entries(service, "device.assigned")] == [row.log_seq, back.log_seq]
    assert service.verify().ok


def test_assigning_an_unknown_device_registers_it(service: Service) -> None:
    service.assign_device("NEVERDOCKED", officer="A", unit="U1")
    (status,) = service.devices()
    assert status.serial == "NEVERDOCKED" and status.last_docked is None
    assert status.first_seen == isoformat_utc(NOW)
    assert status.current is not None and status.current.officer == "A"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"serial": "", "officer": "A", "unit": "U1"}, "invalid device serial"),
        ({"serial": "   ", "officer": "A", "unit": "U1"}, "invalid device serial"),
        ({"officer": "A", "unit": None}, "needs both an officer and a unit"),
        ({"officer": "A", "unit": "  "}, "needs both an officer and a unit"),
        ({"officer": " ", "unit": "U1"}, "needs both an officer and a unit"),
        (
            {"officer": "A", "unit": "U1", "valid_to": NOW - timedelta(seconds=1)},
            "must be after its start",
        ),
        (
            {
                "officer": "A",
                "unit": "U1",
                "valid_from": NOW - timedelta(hours=1),
                "valid_to": NOW - timedelta(hours=1),
            },
            "must be after its start",
        ),
        (
            {
                "officer": None,
                "unit": None,
                "valid_from": NOW,
                "valid_to": NOW - timedelta(days=2),
            },
            "end (2026-11-23T09:00:00Z) must be after its start (2026-11-25T09:00:00Z)",
        ),
    ],
)
def test_invalid_assignment_is_refused_with_a_clear_message(
    service: Service, kwargs: dict[str, Any], message: str
) -> None:
    """Bad input is a DockdError that says what is wrong, and nothing is written."""
    kwargs = {"serial": "CAM1", **kwargs}
    serial = kwargs.pop("serial")
    head = service.catalog.head()
    with pytest.raises(DockdError) as caught:
        service.assign_device(serial, **kwargs)
    assert message in str(caught.value)
    assert service.catalog.head() == head
    assert service.catalog.assignments() == []
    assert service.devices() == []


# -- the assignments table and verify --------------------------------------------------


@pytest.fixture
def assigned(service: Service) -> Service:
    service.assign_device("CAM1", officer="A", unit="U1", valid_from=NOW - timedelta(days=1))
    assert service.verify().ok
    return service


@pytest.fixture
def raw_db(assigned: Service) -> Iterator[sqlite3.Connection]:
    """A second connection to the catalog: someone with the file and the sqlite3 shell."""
    conn = sqlite3.connect(assigned.catalog.path, isolation_level=None)
    yield conn
    conn.close()


@pytest.mark.parametrize("sql", ["UPDATE assignments SET officer = 'M'", "DELETE FROM assignments"])
def test_assignments_table_refuses_update_and_delete(
    assigned: Service, raw_db: sqlite3.Connection, sql: str
) -> None:
    """Assignments are history: a correction is a new row, never an edit."""
    with pytest.raises(sqlite3.IntegrityError, match="assignments are history"):
        raw_db.execute(sql)
    (row,) = assigned.catalog.assignments()
    assert row.officer == "A"


def test_verify_finds_a_changed_assignment(assigned: Service, raw_db: sqlite3.Connection) -> None:
    """Invariant 3: an assignment edited behind the service's back (trigger dropped) is found."""
    raw_db.execute("DROP TRIGGER assignments_no_update")
    raw_db.execute("UPDATE assignments SET officer = 'MALLORY' WHERE id = 1")
    problems = assigned.verify().problems
    assert [(p.kind, p.where) for p in problems] == [("catalog_row_changed", "assignment 1")]
    assert "officer" in problems[0].detail


def test_verify_finds_a_shifted_assignment_period(
    assigned: Service, raw_db: sqlite3.Connection
) -> None:
    raw_db.execute("DROP TRIGGER assignments_no_update")
    raw_db.execute("UPDATE assignments SET valid_from = '2020-01-01T00:00:00Z' WHERE id = 1")
    problems = assigned.verify().problems
    assert [(p.kind, p.where) for p in problems] == [("catalog_row_changed", "assignment 1")]
    assert "valid_from" in problems[0].detail


def test_verify_finds_a_deleted_assignment(assigned: Service, raw_db: sqlite3.Connection) -> None:
    raw_db.execute("DROP TRIGGER assignments_no_delete")
    raw_db.execute("DELETE FROM assignments WHERE id = 1")
    assert _problems(assigned) == {("catalog_row_missing", "assignment 1")}


def test_verify_finds_a_forged_assignment(assigned: Service, raw_db: sqlite3.Connection) -> None:
    """A row inserted with no entry of its own, even one pointing at a real entry."""
    (real,) = assigned.catalog.assignments()
    raw_db.execute(
        "INSERT INTO assignments (id, serial, officer, unit, valid_from, created_at, log_seq) "
        "VALUES (2, 'CAM1', 'MALLORY', 'U9', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z', ?)",
        [real.log_seq],
    )
    assert _problems(assigned) == {("catalog_row_unlogged", "assignment 2")}


def test_forged_assignment_would_steal_attribution_but_verify_names_it(
    tmp_path: Path, assigned: Service, raw_db: sqlite3.Connection, config: Config
) -> None:
    """Why the check matters: the newest row wins, so a forged row decides ownership."""
    raw_db.execute(
        "INSERT INTO assignments (id, serial, officer, unit, valid_from, created_at, log_seq) "
        "VALUES (99, 'CAM1', 'MALLORY', 'U9', '2026-11-25T00:00:00Z', '2026-11-25T00:00:00Z', 1)"
    )
    start = NOW - timedelta(hours=1)
    cam = tmp_path / "cam"
    put(cam, f"DCIM/{_clip_name(config, start, 1)}", b"x" * 100)
    _dock(assigned, cam, config)
    assert assigned.recordings()[0].officer == "MALLORY"
    assert ("catalog_row_unlogged", "assignment 99") in _problems(assigned)


def test_verify_finds_a_recording_relabelled_behind_the_services_back(
    tmp_path: Path, assigned: Service, raw_db: sqlite3.Connection, config: Config
) -> None:
    start = NOW - timedelta(hours=1)
    cam = tmp_path / "cam"
    put(cam, f"DCIM/{_clip_name(config, start, 1)}", b"x" * 100)
    _dock(assigned, cam, config)
    assert assigned.verify().ok
    raw_db.execute("UPDATE recordings SET officer = 'MALLORY', unit = 'U9' WHERE id = 1")
    assert assigned.recordings()[0].officer == "MALLORY"
    assert not assigned.verify().ok


def test_assignment_committed_during_an_ingest_is_not_lost(
    tmp_path: Path,
    service: Service,
    config: Config,
    clip_bank: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread (socket API) assigns the camera while a docking commits a clip of it.

    The other thread is started right after the docking's read of the
    assignments and given a second to finish: with the bug it slips in before
    the recording's transaction; once the read is inside the transaction, it
    waits for that commit and then re-attributes the new row.
    """
    start = NOW - timedelta(hours=1)
    real = service.catalog.assignments
    other: list[threading.Thread] = []

    def read_then_other_thread_assigns(serial: str | None = None) -> list[Assignment]:
        rows = real(serial)
        if not other:
            other.append(
                threading.Thread(
                    target=service.assign_device,
                    args=("CAM1",),
                    kwargs={"officer": "A", "unit": "U1", "valid_from": start},
                )
            )
            other[0].start()
            other[0].join(timeout=1.0)
        return rows

    monkeypatch.setattr(service.catalog, "assignments", read_then_other_thread_assigns)
    _dock(service, _camera(tmp_path / "cam", config, clip_bank[:1], [start]), config)
    other[0].join()
    monkeypatch.undo()
    (rec,) = service.recordings()
    assert (rec.officer, rec.unit) == ("A", "U1")
    assert FLAG_UNASSIGNED not in rec.flags


# -- devices() -------------------------------------------------------------------------

IDENTITY = DeviceIdentity(
    serial="CAM1",
    slot="pci-0000:00:14.0-usb-0:3:1.0",
    devnode="/dev/sdb1",
    sys_path="/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3",
    fs_type="vfat",
    vendor_id="2bdf",
    model_id="0102",
    vendor="Hikvision",
    model="DS-MH2111",
)


def _short_overdue(config: Config, hours: float) -> Config:
    return dataclasses.replace(
        config, devices=dataclasses.replace(config.devices, overdue_hours=hours)
    )


def test_devices_lists_docked_devices_with_identity_and_count(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    starts = [NOW - timedelta(hours=2), NOW - timedelta(hours=1)]
    cam = _camera(tmp_path / "cam", config, clip_bank[:2], starts)
    _dock(service, cam, config, device=IDENTITY)
    service.assign_device("CAM9", officer="B", unit="U2")
    by_serial = {d.serial: d for d in service.devices()}
    assert set(by_serial) == {"CAM1", "CAM9"}
    cam1 = by_serial["CAM1"]
    assert (cam1.vendor, cam1.model, cam1.profile) == ("Hikvision", "DS-MH2111", "gat947")
    assert cam1.last_slot == IDENTITY.slot
    assert cam1.first_seen == cam1.last_docked == isoformat_utc(NOW)
    assert cam1.recordings == 2
    assert cam1.current is None and cam1.history == () and not cam1.overdue
    cam9 = by_serial["CAM9"]
    assert cam9.recordings == 0 and cam9.last_docked is None
    assert cam9.current is not None and cam9.current.officer == "B"
    assert cam9.as_json()["assigned_to"]["officer"] == "B"
    session = service.catalog.sessions()[0]
    assert session["slot"] == IDENTITY.slot
    started = _entries(service, "session.started")[0]
    assert started.data["device"]["vendor"] == "Hikvision"


def test_docking_again_keeps_first_seen_and_moves_last_docked(
    tmp_path: Path, service: Service, config: Config, clock: FixedClock, clip_bank: list[Path]
) -> None:
    cam = _camera(tmp_path / "cam", config, clip_bank[:1], [NOW - timedelta(hours=1)])
    _dock(service, cam, config, device=IDENTITY)
    clock.advance(timedelta(hours=5))
    other_slot = dataclasses.replace(IDENTITY, slot="pci-0000:00:14.0-usb-0:4:1.0")
    put(cam, f"DCIM/{_clip_name(config, NOW + timedelta(hours=2), 2)}", clip_bank[1])
    _dock(service, cam, config, device=other_slot)
    (dev,) = service.devices()
    assert dev.first_seen == isoformat_utc(NOW)
    assert dev.last_docked == isoformat_utc(NOW + timedelta(hours=5))
    assert dev.last_slot == other_slot.slot
    assert dev.recordings == 2


def test_assigned_device_not_docked_in_time_is_overdue(
    tmp_path: Path, config: Config, clock: FixedClock, clip_bank: list[Path]
) -> None:
    """R1: an assigned camera must come back within devices.overdue_hours."""
    config = _short_overdue(config, 2)
    with Service(config, clock) as svc:
        svc.assign_device("CAM1", officer="A", unit="U1", valid_from=NOW - timedelta(hours=1))
        cam = _camera(tmp_path / "cam", config, clip_bank[:1], [NOW - timedelta(minutes=30)])
        _dock(svc, cam, config)
        assert not svc.devices()[0].overdue
        clock.advance(timedelta(hours=2))
        assert not svc.devices()[0].overdue, "exactly the limit is not yet overdue"
        clock.advance(timedelta(seconds=1))
        (dev,) = svc.devices()
        assert dev.overdue and dev.as_json()["overdue"] is True
        _dock(svc, cam, config)  # docking again clears it
        assert not svc.devices()[0].overdue


def test_assigned_but_never_docked_device_becomes_overdue(
    config: Config, clock: FixedClock
) -> None:
    with Service(config, clock) as svc:
        svc.assign_device("CAM1", officer="A", unit="U1")
        clock.advance(timedelta(hours=config.devices.overdue_hours) - timedelta(minutes=1))
        assert not svc.devices()[0].overdue
        clock.advance(timedelta(minutes=2))
        assert svc.devices()[0].overdue


def test_unassigned_devices_are_never_overdue(
    tmp_path: Path, config: Config, clock: FixedClock, clip_bank: list[Path]
) -> None:
    with Service(config, clock) as svc:
        cam = _camera(tmp_path / "cam", config, clip_bank[:1], [NOW - timedelta(hours=1)])
        _dock(svc, cam, config)  # never assigned
        svc.assign_device("CAM2", officer="A", unit="U1", valid_from=NOW - timedelta(days=9))
        svc.assign_device("CAM2", officer=None, unit=None, valid_from=NOW - timedelta(days=8))
        clock.advance(timedelta(days=30))
        assert {d.serial: d.overdue for d in svc.devices()} == {"CAM1": False, "CAM2": False}


def test_device_issued_from_the_pool_is_not_overdue_at_once(
    tmp_path: Path, config: Config, clock: FixedClock, clip_bank: list[Path]
) -> None:
    with Service(config, clock) as svc:
        cam = _camera(tmp_path / "cam", config, clip_bank[:1], [NOW - timedelta(hours=1)])
        _dock(svc, cam, config)  # returned and offloaded, then in the pool for 3 days
        clock.advance(timedelta(days=3))
        svc.assign_device("CAM1", officer="A", unit="U1")  # issued now
        clock.advance(timedelta(hours=1))
        assert not svc.devices()[0].overdue


# -- camera clock offset (invariant 7) -------------------------------------------------


@pytest.mark.parametrize(("skew", "offset"), [(95.4, 95), (-3600.0, -3600), (0.0, 0)])
def test_health_clock_offset_is_recorded_on_session_and_recordings(
    tmp_path: Path,
    service: Service,
    config: Config,
    clip_bank: list[Path],
    skew: float,
    offset: int,
) -> None:
    health = DeviceHealth(
        battery_percent=81,
        camera_clock=NOW + timedelta(seconds=skew),
        read_at=NOW,
    )
    starts = [NOW - timedelta(hours=2), NOW - timedelta(hours=1)]
    cam = _camera(tmp_path / "cam", config, clip_bank[:2], starts)
    report = _dock(service, cam, config, device=IDENTITY, health=health)
    (session,) = service.catalog.sessions()
    assert session["clock_offset_s"] == offset
    stored_health = json.loads(session["health"])
    assert stored_health["clock_offset_s"] == offset and stored_health["battery_percent"] == 81
    started = _entries(service, "session.started")[0]
    assert started.data["clock_offset_s"] == offset
    assert started.data["health"]["clock_offset_s"] == offset
    assert len(report.outcomes) == 2
    for rec in service.recordings():
        assert rec.clock_offset_s == offset
        assert _entry(service, rec.log_seq).data["clock_offset_s"] == offset


def test_no_health_means_no_offset(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    cam = _camera(tmp_path / "cam", config, clip_bank[:1], [NOW - timedelta(hours=1)])
    _dock(service, cam, config)
    assert service.catalog.sessions()[0]["clock_offset_s"] is None
    assert service.catalog.sessions()[0]["health"] is None
    assert service.recordings()[0].clock_offset_s is None


def test_explicit_offset_wins_over_health(service: Service) -> None:
    health = DeviceHealth(camera_clock=NOW + timedelta(seconds=95), read_at=NOW)
    info = service.begin_session(
        "CAM1", "gat947", "/media/cam", wipe=False, clock_offset_s=7, health=health
    )
    assert info.clock_offset_s == 7
    assert service.catalog.sessions()[0]["clock_offset_s"] == 7
