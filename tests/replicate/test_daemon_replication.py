"""The daemon with a bucket: it refuses bad targets at start (exit 2), uploads what it
docks in the background, keeps docking while the bucket is unreachable, and (with
replicate.require_before_wipe) clears a camera only once the bucket holds its files.

The first tests run `dockd run` as a process (tests/runner/test_daemon.py's Dockd
harness) with a drop folder, against the session's Ceph cluster; the last drive the
daemon's wipe gate in process, on a camera folder, with the real uploader.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.clock import SystemClock
from dockd.devices.profiles import make_profile
from dockd.integrity.chain import LogEntry
from dockd.runner.daemon import Daemon
from dockd.runner.session import run_session
from dockd.runner.slots import SlotState, _Job
from dockd.service import Service
from tests.conftest import put, recent
from tests.replicate.ceph import Ceph, S3User
from tests.replicate.conftest import credentials_file, new_bucket, replicate_toml
from tests.replicate.test_replication import dock_config, push
from tests.runner.test_daemon import SERIAL, Dockd, clip_name, dockd, wait_for

pytestmark = pytest.mark.ceph


# The `dockd` fixture is tests/runner/test_daemon.py's: one test's daemon, killed at the end.
_ = dockd


def configure(d: Dockd, user: S3User, bucket: str, **extra: object) -> None:
    d.write_config()
    secret = extra.pop("secret", None)
    creds = credentials_file(d.tmp, user, secret=str(secret) if secret else None)
    endpoint = extra.pop("endpoint", None)
    text = replicate_toml(user, bucket, creds, **extra)
    if endpoint:
        text = text.replace(f'"{user.endpoint}"', f'"{endpoint}"')
    with open(d.config, "a", encoding="utf-8") as out:
        out.write(text)


def drop_batch(d: Dockd, clips: list[Path], now: datetime, name: str = "batch1") -> Path:
    incoming = d.drop / f".incoming-{name}"
    for i, clip in enumerate(clips):
        put(incoming, f"DCIM/{clip_name(i, i + 1, first=recent(now))}", clip)
    (incoming / "dockd-import.json").write_text(json.dumps({"serial": SERIAL}))
    batch = d.drop / name
    incoming.rename(batch)
    return batch


def test_the_daemon_uploads_what_it_docks(
    ceph: tuple[Ceph, S3User], dockd: Dockd, recent_clips: list[Path], now_utc: datetime
) -> None:
    _, user = ceph
    bucket = new_bucket(user)
    configure(dockd, user, bucket)
    dockd.start()
    drop_batch(dockd, recent_clips[:2], now_utc)

    def replicated() -> dict[str, Any] | None:
        status = dockd.status()
        rep = status["replication"]
        slot = next((s for s in status["slots"] if s["slot"] == "drop:batch1"), None)
        done = slot is not None and slot["state"] == "done"
        return rep if done and rep["queue"] == 0 and rep["verified"] >= 4 else None

    rep = wait_for(replicated, 90, "the docking uploaded", dockd.logs, interval=0.3)
    assert rep["bucket"] == bucket and rep["last_error"] is None
    human = dockd.cli("status")
    assert f"replication to {bucket}: 0 waiting" in human.stdout, human.stdout
    objects = [
        k["Key"]
        for k in user.client().list_objects_v2(Bucket=bucket).get("Contents", [])
        if "/objects/" in k["Key"]
    ]
    assert len(objects) == 2
    assert dockd.events("replicate.uploaded")
    code, _ = dockd.stop()
    assert code == 0


@pytest.mark.parametrize(
    ("setting", "extra"),
    [("replicate.bucket", {"lock": False}), ("replicate.credentials", {"secret": "wrong"})],
)
def test_a_bucket_that_cannot_hold_evidence_stops_the_start(
    ceph: tuple[Ceph, S3User], dockd: Dockd, setting: str, extra: dict[str, Any]
) -> None:
    _, user = ceph
    bucket = new_bucket(user, lock=extra.pop("lock", True))
    configure(dockd, user, bucket, **extra)
    proc = dockd.start(wait=False)
    assert proc.wait(60) == 2, dockd.logs()
    assert setting in dockd.logs()
    dockd.proc = None


def test_an_unreachable_bucket_never_holds_up_a_docking(
    ceph: tuple[Ceph, S3User], dockd: Dockd, recent_clips: list[Path], now_utc: datetime
) -> None:
    _, user = ceph
    configure(dockd, user, new_bucket(user), endpoint="http://127.0.0.1:9")
    dockd.start()
    drop_batch(dockd, recent_clips[:1], now_utc)

    def done() -> dict[str, Any] | None:
        slot = dockd.slot("drop:batch1")
        return slot if slot is not None and slot["state"] == "done" else None

    slot = wait_for(done, 60, "the batch ingested while the bucket is away", dockd.logs)
    assert slot["counts"]["ingested"] == 1
    rep = dockd.status()["replication"]
    assert rep["queue"] >= 1 and "cannot reach" in rep["problem"]
    assert dockd.events("replicate.unavailable")
    code, _ = dockd.stop(signal.SIGTERM)
    assert code == 0


# -- the wipe gate, in process -----------------------------------------------------------


class CameraFolder:
    """A camera volume the daemon holds: a folder here (the mounting itself is tested
    with umockdev and FUSE in tests/runner/test_daemon_udev.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unmounted = False

    @contextlib.contextmanager
    def writable(self) -> Iterator[Path]:
        yield self.path

    def unmount(self) -> None:
        self.unmounted = True


def _held_docking(
    tmp_path: Path, user: S3User, clips: list[Path]
) -> tuple[Daemon, Service, _Job, CameraFolder, Any]:
    config = dock_config(tmp_path, user, new_bucket(user), require_before_wipe=True)
    daemon = Daemon(config, clock=SystemClock(), udev=False)
    service = daemon.service = Service(config, SystemClock())
    camera = CameraFolder(tmp_path / "cam")
    for i, clip in enumerate(clips):
        put(camera.path, f"DCIM/{i}.mp4", clip)
    report = run_session(
        service, camera.path, SERIAL, make_profile("gat947", config.profiles), wipe=True
    )
    job = _Job(datetime.now(UTC) + timedelta(hours=20), 1, "slot-3", mounted=camera)  # type: ignore[arg-type]
    daemon._slots["slot-3"] = SlotState("slot-3", SERIAL, "/dev/sdz1", _owner=1)
    daemon._finished(job, report)
    return daemon, service, job, camera, report


def test_a_camera_is_cleared_once_the_bucket_holds_its_files(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    _, user = ceph
    daemon, service, job, camera, report = _held_docking(tmp_path, user, recent_clips[:2])
    try:
        assert len(report.held) == 2
        slot = daemon._slots["slot-3"]
        assert slot.state == "waiting for upload" and not camera.unmounted
        daemon._try_held(job, report.session_id, list(report.held))
        assert slot.state == "waiting for upload"  # not yet in the bucket: kept
        assert len(list((camera.path / "DCIM").iterdir())) == 2
        push(service)
        daemon._try_held(job, report.session_id, list(report.held))
        assert slot.state == "done" and slot.counts["wiped"] == 2, slot
        assert list((camera.path / "DCIM").iterdir()) == []
        assert camera.unmounted and daemon._held == []
        wiped = [
            e
            for row in service.catalog.log_rows()
            if (e := LogEntry.from_bytes(row.raw)).kind == "session.wiped"
        ]
        assert wiped[-1].data["wiped_recordings"] == sorted(o.recording.id for o in report.outcomes)
        assert service.verify().ok
    finally:
        service.close()


def test_a_camera_taken_out_before_the_upload_keeps_its_files(
    ceph: tuple[Ceph, S3User], tmp_path: Path, recent_clips: list[Path]
) -> None:
    _, user = ceph
    daemon, service, job, camera, report = _held_docking(tmp_path, user, recent_clips[:1])
    try:
        job.cancelled.set()  # udev: removed
        daemon._try_held(job, report.session_id, list(report.held))
        slot = daemon._slots["slot-3"]
        assert slot.state == "error" and "taken out before the upload" in (slot.error or "")
        assert len(list((camera.path / "DCIM").iterdir())) == 1
        assert camera.unmounted and daemon._held == []
    finally:
        service.close()


def test_a_drop_batch_waits_for_the_bucket_then_goes_when_touched(
    ceph: tuple[Ceph, S3User], dockd: Dockd, recent_clips: list[Path], now_utc: datetime
) -> None:
    """README "Replication": with require_before_wipe a card's batch stays in the drop
    folder until the bucket holds it; touched after that, the next pass clears it."""
    import os

    _, user = ceph
    configure(dockd, user, new_bucket(user), require_before_wipe=True)
    dockd.start()
    batch = drop_batch(dockd, recent_clips[:1], now_utc)

    def kept() -> dict[str, Any] | None:
        slot = dockd.slot("drop:batch1")
        return slot if slot is not None and slot["state"] == "done" else None

    slot = wait_for(kept, 60, "the batch ingested", dockd.logs)
    assert slot["counts"]["waiting_for_upload"] == 1 and slot["counts"]["wiped"] == 0
    wait_for(lambda: dockd.status()["replication"]["queue"] == 0, 90, "the upload", dockd.logs)
    assert batch.exists()
    os.utime(batch)  # `touch` the folder
    wait_for(lambda: not batch.exists(), 60, "the batch cleared", dockd.logs)
    assert dockd.stop()[0] == 0
