"""Service start-up recovery and the order of writes (DESIGN §4a)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.integrity.chain import LogEntry
from dockd.runner.session import run_session
from dockd.service import Service
from tests.conftest import put


def test_recovery_empties_tmp_and_closes_dead_sessions(config: Config, clock: FixedClock) -> None:
    with Service(config, clock) as svc:
        svc.begin_session("CAM1", "gat947", "/media/cam", wipe=True)
        (svc.store.tmp / "deadbeef.part").write_bytes(b"half a copy")
    # The process "died" with a running session and a partial copy.
    with Service(config, clock) as svc:
        assert list(svc.store.tmp.iterdir()) == []
        assert svc.catalog.sessions()[0]["state"] == "interrupted"
        last = LogEntry.from_bytes(svc.log_entry(svc.catalog.head()[0]) or b"")
        assert last.kind == "session.interrupted" and last.data["session"] == 1
        assert svc.verify().ok


def _camera_and_orphan(svc: Service, cam: Path, content: bytes | None) -> tuple[bytes, str]:
    """A camera file and, in the store under its hash, an unreferenced object."""
    data = os.urandom(10_000)
    put(cam, "DCIM/a.mp4", data)
    sha = hashlib.sha256(data).hexdigest()
    orphan = svc.store.object_path(sha)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(data if content is None else content)
    orphan.chmod(0o444)
    return data, sha


def test_orphan_object_from_a_crash_is_reused(
    tmp_path: Path, config: Config, clock: FixedClock
) -> None:
    """A crash between rename and commit leaves an orphan object; the next docking adopts it."""
    cam = tmp_path / "cam"
    with Service(config, clock) as svc:
        _, sha = _camera_and_orphan(svc, cam, None)
        before = svc.verify()
        assert before.ok and before.orphans == (sha,), "an intact orphan is listed, not a fault"
        report = run_session(svc, cam, "CAM1", make_profile("gat947", config.profiles), wipe=True)
        assert report.counts()["ingested"] == 1 and report.counts()["wiped"] == 1
        assert report.outcomes[0].recording.sha256 == sha
        assert svc.verify().ok


def test_damaged_orphan_is_not_trusted(tmp_path: Path, config: Config, clock: FixedClock) -> None:
    """If the object already in place does not hash right, the camera file stays."""
    cam = tmp_path / "cam"
    with Service(config, clock) as svc:
        data, _ = _camera_and_orphan(svc, cam, b"damaged")
        report = run_session(svc, cam, "CAM1", make_profile("gat947", config.profiles), wipe=True)
        assert report.exit_code == 4
        assert "damaged" in report.failed[0].reason
        assert (cam / "DCIM" / "a.mp4").read_bytes() == data
        assert list(svc.store.tmp.iterdir()) == []


def test_interrupted_session_resumes_on_next_docking(
    tmp_path: Path, config: Config, clock: FixedClock, clip_bank: list[Path]
) -> None:
    """Invariant 4: files an interrupted session left on the camera are ingested once, later."""
    cam = tmp_path / "cam"
    for i, clip in enumerate(clip_bank[:4]):
        put(cam, f"DCIM/{i}.mp4", clip)
    saved = tmp_path / "saved"
    shutil.copytree(cam, saved)
    profile = make_profile("gat947", config.profiles)
    with Service(config, clock) as svc:
        run_session(svc, cam, "CAM1", profile, wipe=False)
    # Simulate a camera that still holds everything (e.g. wipe never ran).
    shutil.rmtree(cam)
    shutil.copytree(saved, cam)
    with Service(config, clock) as svc:
        report = run_session(svc, cam, "CAM1", profile, wipe=True)
        assert report.counts()["duplicates"] == 4 and report.counts()["wiped"] == 4
        assert len(svc.recordings()) == 4
        assert svc.verify().ok
