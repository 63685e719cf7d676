"""Sessions: ingest, dedupe, wipe after proof, resume (invariants 1, 4, 5)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.integrity.chain import LogEntry
from dockd.runner.session import EXIT_FLAGGED, EXIT_OK, run_session
from dockd.service import Service
from tests.conftest import put


def _gat(config: Config):  # type: ignore[no-untyped-def]
    return make_profile("gat947", config.profiles)


def test_ingest_copies_verifies_and_wipes(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    """Invariant 1: every file is in the store, row + entry committed, then wiped."""
    cam = tmp_path / "cam"
    names = ["012345_DSJ0001_20261125080000_0001.MP4", "012345_DSJ0001_20261125081000_0002.MP4"]
    for name, clip in zip(names, clip_bank, strict=False):
        put(cam, f"DCIM/100MEDIA/{name}", clip)
    report = run_session(service, cam, "SER1", _gat(config), wipe=True)
    assert report.exit_code == EXIT_OK
    assert report.counts()["ingested"] == 2 and report.counts()["wiped"] == 2
    assert not list((cam / "DCIM" / "100MEDIA").iterdir()), "camera files are wiped"
    assert (cam / "DCIM" / "100MEDIA").is_dir(), "emptied folders are left in place"
    for outcome, clip in zip(report.outcomes, clip_bank, strict=False):
        stored = service.store.root / outcome.recording.store_path
        assert stored.read_bytes() == clip.read_bytes()
        assert stored.stat().st_mode & 0o222 == 0, "store objects are read-only"
        rec = outcome.recording
        assert rec.device_number == "DSJ0001" and rec.officer == "012345"
        assert rec.time_source == "file_name"
        # Camera local time Asia/Shanghai 08:00 -> 00:00 UTC
        assert rec.recorded_start.startswith("2026-11-25T00:")
        entry = LogEntry.from_bytes(service.log_entry(rec.log_seq) or b"")
        assert entry.kind == "recording.ingested" and entry.data["sha256"] == rec.sha256
    assert not list(service.store.tmp.iterdir())
    assert service.verify().ok


def test_second_docking_ingests_nothing_twice(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    """Invariant 4: re-running on the same volume adds no recordings."""
    cam = tmp_path / "cam"
    put(cam, "DCIM/a.mp4", clip_bank[0])
    put(cam, "DCIM/b.mp4", clip_bank[1])
    first = run_session(service, cam, "SER1", _gat(config), wipe=False)
    second = run_session(service, cam, "SER1", _gat(config), wipe=False)
    assert first.counts()["ingested"] == 2
    assert second.counts()["ingested"] == 0 and second.counts()["duplicates"] == 2
    assert len(service.recordings()) == 2
    third = run_session(service, cam, "SER1", _gat(config), wipe=True)
    assert third.counts()["wiped"] == 2 and third.counts()["ingested"] == 0
    assert not (cam / "DCIM" / "a.mp4").exists()


def test_identical_bytes_stored_once_with_two_rows(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    cam = tmp_path / "cam"
    put(cam, "DCIM/a.mp4", clip_bank[0])
    put(cam, "DCIM/copy-of-a.mp4", clip_bank[0])
    report = run_session(service, cam, "SER1", _gat(config), wipe=True)
    assert report.counts()["ingested"] == 2
    assert len({o.recording.sha256 for o in report.outcomes}) == 1
    assert len(list(service.store.iter_objects())) == 1
    assert service.verify().ok


def test_corrupt_and_empty_clips_are_ingested_and_flagged(
    tmp_path: Path, service: Service, config: Config
) -> None:
    """Invariant 5: footage is never rejected."""
    cam = tmp_path / "cam"
    put(cam, "DCIM/broken.mp4", b"\x00\x00\x00\x18ftypmp42 not really a movie")
    put(cam, "DCIM/empty.mp4", b"")
    report = run_session(service, cam, "SER1", _gat(config), wipe=True)
    assert report.exit_code == EXIT_FLAGGED
    flags = {o.found.display: o.recording.flags for o in report.outcomes}
    assert flags["DCIM/broken.mp4"] == ("unassigned_device", "unreadable_media")
    assert flags["DCIM/empty.mp4"] == ("empty", "unassigned_device")
    assert report.counts()["wiped"] == 2
    assert service.verify().ok


def test_late_offload_is_flagged(tmp_path: Path, config: Config) -> None:
    """R1 (001 Art. 26): a recording docked after end + 24 h is late."""
    cam = tmp_path / "cam"
    put(cam, "DCIM/012345_DSJ0001_20261120080000_0001.MP4", b"x" * 100)
    clock = FixedClock()
    from datetime import UTC, datetime

    clock.current = datetime(2026, 11, 25, tzinfo=UTC)
    with Service(config, clock) as svc:
        report = run_session(svc, cam, "SER1", _gat(config), wipe=False)
    rec = report.outcomes[0].recording
    assert rec.late and "late" in rec.flags
    assert rec.deadline == "2026-11-21T00:00:00Z"


def test_sqlite_runs_wal_with_full_sync(service: Service) -> None:
    db = service.catalog.db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_log_is_append_only(tmp_path: Path, service: Service, config: Config) -> None:
    cam = tmp_path / "cam"
    put(cam, "DCIM/a.mp4", b"abc")
    run_session(service, cam, "SER1", _gat(config), wipe=False)
    conn = sqlite3.connect(service.catalog.path)
    for sql in ("UPDATE log SET kind='x'", "DELETE FROM log", "UPDATE recordings SET sha256='0'"):
        try:
            conn.execute(sql)
        except sqlite3.IntegrityError:
            continue
        raise AssertionError(f"{sql} was allowed")
    row = conn.execute("SELECT summary FROM sessions").fetchone()
    assert json.loads(row[0])["ingested"] == 1


def test_stop_mid_copy_leaves_the_file_on_the_camera_and_resumes(
    tmp_path: Path, config: Config, clock: FixedClock
) -> None:
    """A stopping daemon (or a removed camera) interrupts the copy between chunks:
    the partial copy is discarded, nothing is wiped, and the next docking ingests it."""
    import dataclasses

    small = dataclasses.replace(
        config, ingest=dataclasses.replace(config.ingest, buffer_size=4096, probe_ahead=0)
    )
    cam = tmp_path / "cam"
    first = put(cam, "DCIM/a.mp4", b"a" * 4096 * 64)
    put(cam, "DCIM/b.mp4", b"b" * 4096)
    asked = 0

    def stop_during_first_copy() -> bool:
        nonlocal asked
        asked += 1
        return asked > 10  # a few chunks into a.mp4

    with Service(small, clock) as service:
        report = run_session(
            service, cam, "SER1", _gat(small), wipe=True, should_stop=stop_during_first_copy
        )
        assert report.state == "stopped"
        assert report.outcomes == () and report.wiped == ()
        assert first.read_bytes() == b"a" * 4096 * 64, "still on the camera, unchanged"
        assert not list((small.state_dir / "store" / "tmp").iterdir()), "no partial copy"
        assert service.recordings() == []
        again = run_session(service, cam, "SER1", _gat(small), wipe=True)
        assert again.state == "done" and again.counts()["ingested"] == 2
        assert again.counts()["wiped"] == 2
        assert service.verify().ok
