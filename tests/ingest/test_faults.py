"""Faults during ingest, made real: unplug, full disk, a file that will not hold
still, a damaged store object (DESIGN invariants 1, 2, 4 and 6).

No fault here is simulated by replacing dockd's code: the camera is a real
FAT32 image under fusefat whose daemon is killed (the kernel then fails
every access with ENOTCONN, as for a pulled medium), the store sits on a
real 8 MiB tmpfs, and the changing file is really appended to. Where a test
needs to act at one exact instant of the copy, it wraps `Store.check_space`
(the free-space guard, called once per copy attempt after the source is
opened and before its first byte is read) and always calls the real one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from dockd.clock import FixedClock
from dockd.config import Config, IngestConfig
from dockd.devices.profiles import Profile, make_profile
from dockd.integrity.chain import LogEntry
from dockd.runner.session import EXIT_FAILED, EXIT_FLAGGED, EXIT_OK, SessionReport, run_session
from dockd.service import FLAG_CHANGED, Service
from dockd.store import Store
from tests.conftest import NOW, camera_name, put, recent
from tests.volumes import (
    FAT_TOOLS,
    REPO,
    FuseMount,
    dockd_argv,
    fat_files,
    fat_put,
    fat_read,
    fusefat_mount,
    make_fat32_image,
    needs_root_fuse,
    run_dockd,
    tmpfs_mount,
    write_config,
)

MiB = 1 << 20
FOLDER = "DCIM/100MEDIA"


def _name(seq: int, first: datetime = NOW - timedelta(hours=9)) -> str:
    """A GA/T 947 name recorded `seq` × 10 min after `first`: by default shortly before
    NOW (so never late under FixedClock(NOW)); the real CLI's tests pass a `first`
    from the real clock."""
    return camera_name("012345", "DSJ0001", first + timedelta(minutes=10 * seq), seq)


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _config(tmp_path: Path, **ingest: Any) -> Config:
    values = {"change_retry_delay": 0.0, "min_free_bytes": 0, **ingest}
    return dataclasses.replace(
        Config(), state_dir=tmp_path / "state", ingest=IngestConfig(**values)
    )


def _gat(config: Config) -> Profile:
    return make_profile("gat947", config.profiles)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _assert_store_holds(service: Service, report: SessionReport, files: dict[str, bytes]) -> None:
    """Every committed recording has a proven object with exactly the camera's bytes."""
    for outcome in report.outcomes:
        data = files[outcome.found.display]
        assert outcome.recording.sha256 == _sha(data)
        assert (service.store.root / outcome.recording.store_path).read_bytes() == data
    assert not list(service.store.tmp.iterdir()), "no partial copy is left in store/tmp"
    result = service.verify()
    assert result.ok, result.problems


# -- a. the camera vanishes mid-copy --------------------------------------------------

UNPLUG_FILES = 5
UNPLUG_SIZE = 8 * MiB
UNPLUG_VICTIM = 2  # index of the file being read when the camera is pulled


@dataclass(frozen=True)
class Unplugged:
    """One docking whose camera was pulled while its third file was being copied."""

    image: Path
    mnt: Path
    state: Path
    cfg: Path
    files: dict[str, bytes]  # rel path -> bytes, in copy order
    code: int
    report: dict[str, Any]


def _reading_offset(pid: int, path: Path) -> int | None:
    """The file offset at which process `pid` holds `path` open, or None."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != str(path):
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                for line in info:
                    if line.startswith("pos:"):
                        return int(line.split()[1])
        except FileNotFoundError:
            continue  # closed meanwhile
    return None


def _wait_stopped(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            if f.read().rpartition(")")[2].split()[0] in ("T", "t"):
                return
        time.sleep(0.001)
    raise AssertionError(f"process {pid} did not stop")


def _pull_mid_copy(proc: subprocess.Popen[str], cam: FuseMount, victim: Path, size: int) -> None:
    """Freeze dockd while it is in the first half of `victim`, kill the FUSE daemon, thaw.

    Freezing first makes the instant exact: the rest of the file can then
    only come from a medium that is gone.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ingest ended before the unplug: {proc.communicate()}")
        offset = _reading_offset(proc.pid, victim)
        if offset is not None and offset < size // 2:
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                _wait_stopped(proc.pid)
                offset = _reading_offset(proc.pid, victim)
                assert offset is not None and offset < size - MiB, "raced past the victim"
                cam.unplug()
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            return
        time.sleep(0.0005)
    raise AssertionError(f"dockd never opened {victim}")


@pytest.fixture(scope="module")
def unplugged(tmp_path_factory: pytest.TempPathFactory) -> Unplugged:
    tmp = tmp_path_factory.mktemp("unplug")
    image = make_fat32_image(tmp / "cam.img")
    first = recent(datetime.now(UTC), -60)  # the real CLI reads the real clock
    files = {
        f"{FOLDER}/{_name(i + 1, first)}": _random(UNPLUG_SIZE, i) for i in range(UNPLUG_FILES)
    }
    for rel, data in files.items():
        fat_put(image, rel, data)
    # A small buffer makes each 8 MiB copy take thousands of reads.
    cfg = write_config(tmp / "dockd.toml", buffer_size=4096, change_retry_delay=0, min_free_bytes=0)
    state, mnt = tmp / "state", tmp / "mnt"
    victim = mnt / list(files)[UNPLUG_VICTIM]
    with fusefat_mount(image, mnt) as cam:
        proc = subprocess.Popen(
            dockd_argv(cfg, state, "ingest", mnt, "--serial", "CAM-UNPLUG", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            _pull_mid_copy(proc, cam, victim, UNPLUG_SIZE)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert out.strip(), f"no JSON report; stderr: {err}"
    return Unplugged(image, mnt, state, cfg, files, proc.returncode, json.loads(out))


@needs_root_fuse(*FAT_TOOLS)
def test_unplug_mid_copy_loses_nothing_and_resumes(unplugged: Unplugged) -> None:
    """Invariants 1, 4 and 6: a camera pulled mid-copy leaves every recording either
    proven in the store (row committed, object verified) or still on the camera,
    no partial copy, a failed exit; the next docking ingests exactly the rest."""
    u = unplugged
    names = list(u.files)
    done, rest = names[:UNPLUG_VICTIM], names[UNPLUG_VICTIM:]
    assert u.code == EXIT_FAILED
    report = u.report
    assert [r["source_path"] for r in report["recordings"]] == done
    assert [f["source_path"] for f in report["failed"]] == rest
    assert all(f["reason"] for f in report["failed"])
    # Camera copies are deleted only at the end of a complete session: after an
    # unplug nothing is wiped, and the next docking wipes the proven files.
    assert report["wipe_failed"] == []
    assert not any(r["wiped"] for r in report["recordings"])
    kept = set(done)
    assert not list((u.state / "store" / "tmp").iterdir()), "no partial copy in store/tmp"
    for r in report["recordings"]:
        assert (u.state / "store" / r["store_path"]).read_bytes() == u.files[r["source_path"]]
    assert run_dockd(u.cfg, u.state, "verify").returncode == 0

    # The medium, read without FUSE: each recording is in the store or here, intact.
    on_camera = fat_files(u.image)
    assert on_camera == set(rest) | kept
    for rel in on_camera:
        assert fat_read(u.image, rel) == u.files[rel]

    with fusefat_mount(u.image, u.mnt):  # docked again
        proc = run_dockd(u.cfg, u.state, "ingest", u.mnt, "--serial", "CAM-UNPLUG", "--json")
    again = json.loads(proc.stdout)
    assert proc.returncode == EXIT_FLAGGED, proc.stderr  # random bytes: unreadable_media
    assert sorted(r["source_path"] for r in again["recordings"]) == sorted(on_camera)
    assert (again["counts"]["ingested"], again["counts"]["duplicates"]) == (len(rest), len(kept))
    assert (again["counts"]["failed"], again["counts"]["wipe_failed"]) == (0, 0)
    assert fat_files(u.image) == set(), "the second docking clears the camera"

    rows = json.loads(run_dockd(u.cfg, u.state, "list", "--json").stdout)
    assert sorted(r["source_path"] for r in rows) == sorted(names), "each file exactly once"
    assert {r["source_path"]: r["sha256"] for r in rows} == {
        rel: _sha(data) for rel, data in u.files.items()
    }
    assert run_dockd(u.cfg, u.state, "verify").returncode == 0


@needs_root_fuse(*FAT_TOOLS)
def test_unplug_mid_copy_is_reported_as_volume_vanished(unplugged: Unplugged) -> None:
    """Invariant 6: a vanished volume has a clear outcome: the session ends as
    volume_gone and every file left behind says the volume vanished."""
    report = unplugged.report
    assert report["state"] == "volume_gone"
    reasons = [f["reason"] for f in report["failed"]]
    assert reasons and all(r.startswith("volume vanished") for r in reasons), reasons


def _hook_check_space(monkeypatch: pytest.MonkeyPatch, action: Callable[[int], None]) -> list[int]:
    """Run `action(attempt)` inside each copy attempt (source open, nothing read yet).

    The real free-space check still runs afterwards. Returns the list of
    attempts seen, by size.
    """
    real = Store.check_space
    seen: list[int] = []

    def check_space(store: Store, size: int) -> None:
        seen.append(size)
        action(len(seen))
        real(store, size)

    monkeypatch.setattr(Store, "check_space", check_space)
    return seen


@needs_root_fuse(*FAT_TOOLS)
def test_unplug_after_last_byte_read_leaves_no_partial_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariants 1 and 6: pulled after the whole file was read but before it was
    closed (while the copy is being fsynced), nothing is left in store/tmp and
    the outcome is 'volume vanished'."""
    image = make_fat32_image(tmp_path / "cam.img")
    rel = f"{FOLDER}/{_name(1)}"
    data = _random(4 * MiB, 7)
    fat_put(image, rel, data)
    config = _config(tmp_path, buffer_size=4096)
    mnt = tmp_path / "mnt"
    with fusefat_mount(image, mnt) as cam, Service(config, FixedClock(NOW)) as service:

        def read_all_then_unplug(attempt: int) -> None:
            if attempt == 1:
                # Every byte now sits in the page cache: dockd will read them all.
                assert (mnt / rel).read_bytes() == data
                cam.unplug()

        _hook_check_space(monkeypatch, read_all_then_unplug)
        report = run_session(service, mnt, "CAM-PULL", _gat(config), wipe=True)
        leftovers = list(service.store.tmp.iterdir())
        assert service.verify().ok
    assert report.exit_code == EXIT_FAILED
    assert fat_files(image) == {rel}, "the camera keeps its file"
    assert not leftovers, f"partial copies left behind: {leftovers}"
    assert report.state == "volume_gone"
    assert report.failed[0].reason.startswith("volume vanished"), report.failed[0].reason


# -- b. the store's disk is full ----------------------------------------------------------

FULL_SIZES = (3 * MiB, 6 * MiB, 2 * MiB)  # on an 8 MiB store: the 6 MiB file cannot fit


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[Path, dict[str, bytes]]]:
    """A camera folder with 3, 6 and 2 MiB files; the store on an 8 MiB tmpfs."""
    cam = tmp_path / "cam"
    files = {f"{FOLDER}/{_name(i + 1)}": _random(s, i) for i, s in enumerate(FULL_SIZES)}
    for rel, data in files.items():
        put(cam, rel, data)
    (tmp_path / "state").mkdir(mode=0o700)
    with tmpfs_mount(tmp_path / "state" / "store", "8M"):
        yield cam, files


def _assert_big_one_refused(
    cam: Path, files: dict[str, bytes], report: SessionReport, service: Service
) -> str:
    small_a, big, small_c = files
    assert report.exit_code == EXIT_FAILED
    assert [f.display for f in report.failed] == [big]
    assert [o.found.display for o in report.outcomes] == [small_a, small_c]
    assert len(report.wiped) == 2, "what fits is ingested and wiped"
    assert not (cam / small_a).exists() and not (cam / small_c).exists()
    assert (cam / big).read_bytes() == files[big], "the refused file stays on the camera"
    _assert_store_holds(service, report, files)
    return report.failed[0].reason


@needs_root_fuse()
def test_store_full_precheck_refuses_what_cannot_fit(
    tmp_path: Path, full_disk: tuple[Path, dict[str, bytes]]
) -> None:
    """Invariants 1 and 6: with the free-space pre-check (and a 1 MiB reserve) a file
    that cannot fit is refused before a byte is written, with a reason about space;
    it stays on the camera, the others are ingested and wiped."""
    cam, files = full_disk
    config = _config(tmp_path, min_free_bytes=MiB)
    with Service(config, FixedClock(NOW)) as service:
        report = run_session(service, cam, "CAM-FULL", _gat(config), wipe=True)
        reason = _assert_big_one_refused(cam, files, report, service)
    assert "bytes free" in reason and f"{6 * MiB}-byte file" in reason, reason


@needs_root_fuse()
def test_store_full_mid_copy_enospc(
    tmp_path: Path, full_disk: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariants 1, 2 and 6: when the store's disk really fills up mid-copy (ENOSPC
    from the tmpfs, the pre-check switched off), the failure says the store is
    full, the partial copy is removed (so the next file fits again), the
    camera's file is untouched, and the store still verifies."""
    cam, files = full_disk
    # The guard is not under test here: switch it off so that the write itself fails.
    monkeypatch.setattr(Store, "check_space", lambda store, size: None)
    config = _config(tmp_path, min_free_bytes=0)
    with Service(config, FixedClock(NOW)) as service:
        report = run_session(service, cam, "CAM-FULL", _gat(config), wipe=True)
        reason = _assert_big_one_refused(cam, files, report, service)
    assert "store is full" in reason and "No space left on device" in reason, reason


# -- c. a file that changes while it is copied --------------------------------------------


class Appender(threading.Thread):
    """Appends 4 KiB to a file every millisecond until stopped."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.stop = threading.Event()
        self.appends = 0

    def run(self) -> None:
        with open(self.path, "ab", buffering=0) as f:
            while not self.stop.is_set():
                f.write(os.urandom(4096))
                self.appends += 1
                time.sleep(0.001)


def test_file_changing_throughout_is_ingested_flagged_and_kept(tmp_path: Path) -> None:
    """Invariants 1, 5 and 6: a file that never holds still is retried, then ingested
    as found and flagged changed_during_copy, and NOT deleted from the camera even
    with wipe on."""
    cam = tmp_path / "cam"
    rel = f"{FOLDER}/{_name(1)}"
    # 16 MiB read 4 KiB at a time: each attempt takes far longer than one append period.
    path = put(cam, rel, _random(16 * MiB, 3))
    config = _config(tmp_path, buffer_size=4096, change_retries=2)
    writer = Appender(path)
    with Service(config, FixedClock(NOW)) as service, capture_logs() as logs:
        writer.start()
        while not writer.appends:
            time.sleep(0.001)
        try:
            report = run_session(service, cam, "CAM-CHG", _gat(config), wipe=True)
        finally:
            writer.stop.set()
            writer.join()
        (outcome,) = report.outcomes
        rec = outcome.recording
        stored = (service.store.root / rec.store_path).read_bytes()
        entry = LogEntry.from_bytes(service.log_entry(rec.log_seq) or b"")
        assert service.verify().ok
        assert not list(service.store.tmp.iterdir())
    events = [e["event"] for e in logs]
    assert events.count("ingest.file.retry") == 2, "change_retries = 2"
    assert events.count("ingest.file.changing") == 1
    assert FLAG_CHANGED in rec.flags
    assert report.exit_code == EXIT_FLAGGED
    assert report.wiped == () and not report.wipe_failed and not outcome.may_wipe
    assert entry.data["source_disposition"] == "keep"
    assert path.exists(), "a file that changed while copied is never wiped"
    final = path.read_bytes()
    assert len(stored) >= 16 * MiB and final[: len(stored)] == stored, "ingested as found"
    assert rec.sha256 == _sha(stored)


def test_file_changing_only_during_first_attempt_is_retried_clean(
    tmp_path: Path, clip_bank: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariants 1 and 6: a file that changes during the first copy attempt only
    (the camera finishing its write) is copied again, ingested unflagged with its
    final bytes, and then wiped."""
    cam = tmp_path / "cam"
    rel = f"{FOLDER}/{_name(1)}"
    clip = clip_bank[0].read_bytes()
    path = put(cam, rel, clip[:-4096])  # the camera has not written the tail yet

    def camera_finishes_writing(attempt: int) -> None:
        if attempt == 1:  # exactly once, after dockd opened the file and before it reads
            with open(path, "ab") as f:
                f.write(clip[-4096:])

    config = _config(tmp_path, buffer_size=4096, change_retries=2)
    attempts = _hook_check_space(monkeypatch, camera_finishes_writing)
    with Service(config, FixedClock(NOW)) as service, capture_logs() as logs:
        report = run_session(service, cam, "CAM-CHG", _gat(config), wipe=True)
        (outcome,) = report.outcomes
        _assert_store_holds(service, report, {rel: clip})
    assert attempts == [len(clip) - 4096, len(clip)], "one retry, which saw the final file"
    assert [e["event"] for e in logs].count("ingest.file.retry") == 1
    # No assignment covers it; nothing about the footage is flagged.
    assert outcome.recording.flags == ("unassigned_device",)
    assert report.exit_code == EXIT_OK
    assert report.wiped == (outcome.recording.id,)
    assert not path.exists()


# -- d. a damaged store object and a re-docking ------------------------------------------


def _damage(path: Path) -> None:
    """Flip one byte of a read-only store object, as bit rot or an intruder would."""
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.chmod(path, 0o444)


@pytest.fixture
def damaged_redock(
    tmp_path: Path, clip_bank: list[Path]
) -> Iterator[tuple[Path, bytes, SessionReport, Service]]:
    """Ingest with keep-source, damage the object, dock again with wipe on."""
    cam = tmp_path / "cam"
    rel = f"{FOLDER}/{_name(1)}"
    clip = clip_bank[1].read_bytes()
    put(cam, rel, clip)
    config = _config(tmp_path)
    with Service(config, FixedClock(NOW)) as service:
        first = run_session(service, cam, "CAM-DMG", _gat(config), wipe=False)
        assert first.exit_code == EXIT_OK and first.wiped == ()
        _damage(service.store.root / first.outcomes[0].recording.store_path)
        second = run_session(service, cam, "CAM-DMG", _gat(config), wipe=True)
        yield cam / rel, clip, second, service


def test_damaged_store_object_blocks_wipe_of_camera_copy(
    damaged_redock: tuple[Path, bytes, SessionReport, Service],
) -> None:
    """Invariants 1 and 3: before deleting a camera file as a duplicate, the service
    re-hashes the stored object; a damaged object means the camera copy (the only
    good one) is kept, and `verify` reports store_file_changed."""
    camera_file, clip, report, service = damaged_redock
    assert camera_file.read_bytes() == clip, "the camera copy is kept, intact"
    assert report.wiped == () and not report.ingested
    assert len(service.recordings()) == 1, "no second recording of the same file"
    problems = service.verify().problems
    assert [p.kind for p in problems] == ["store_file_changed"], problems


def test_damaged_store_object_is_reported_by_the_docking(
    damaged_redock: tuple[Path, bytes, SessionReport, Service],
) -> None:
    """Invariant 6: the docking that finds the damage says so: the file is
    reported (failed, reason names the damage) and the exit code is not 0."""
    _, _, report, _ = damaged_redock
    assert report.exit_code == EXIT_FAILED
    assert [f.reason for f in report.failed if "damaged" in f.reason], report.failed
