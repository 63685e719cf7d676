"""The daemon end to end: udev events (umockdev) → FUSE mount → ingest → wipe → unmount.

The daemon runs as its own process under `umockdev-wrapper`, sees the
testbed's synthetic USB cameras through real libudev and pyudev, and mounts
the real loop device each camera's uevent names (a FAT32 image of footage)
with the FUSE back end. `dockd status --json` is asked over the real socket,
and the image is checked afterwards with mtools, which reads it without FUSE.
See tests/devices/udev_testbed.py for how the testbed is wired.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import camera_name, recent
from tests.devices.udev_testbed import MockCamera, UdevTestbed, udev_testbed
from tests.volumes import (
    FAT_TOOLS,
    REPO,
    fat_files,
    fat_put,
    fat_read,
    is_mounted,
    loop_device,
    make_fat32_image,
    needs_root_fuse,
)

pytestmark = [needs_root_fuse(*FAT_TOOLS, "losetup", "umockdev-wrapper")]

FOLDER = "DCIM/100MEDIA"


# The real daemon judges footage by the real clock: recorded three hours before
# this module was loaded, on time whatever the day (tests/conftest.py `recent`).
_FIRST = recent(datetime.now(UTC))


def _name(i: int, serial: str) -> str:
    return camera_name("012345", serial[:7].ljust(7, "0"), _FIRST + timedelta(minutes=i), i + 1)


@dataclass
class Dock:
    """A running daemon and what it needs; one per test."""

    tmp: Path
    tb: UdevTestbed
    config: Path
    state: Path
    runtime: Path
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "dockd", "--config", str(self.config), "-v", "run"]
        self.log = open(self.tmp / f"daemon-{time.monotonic_ns()}.log", "w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.tb.wrap(argv),
            env=self.tb.env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        wait_for(lambda: self.status() is not None, 30, "the daemon to answer on its socket")

    def logs(self) -> str:
        self.log.flush()
        return (Path(self.log.name)).read_text(errors="replace")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dockd", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )

    def status(self) -> dict[str, Any] | None:
        proc = self.cli("status", "--json")
        if proc.returncode != 0:
            assert self.proc is None or self.proc.poll() is None, self.logs()
            return None
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def fast_status(self) -> dict[str, Any]:
        """The socket asked from this process: polls see the daemon within milliseconds
        (the `dockd status` process takes a good part of a second to start)."""
        from dockd.runner.client import DaemonUnavailable, request

        try:
            data: dict[str, Any] = request(self.runtime / "dockd.sock", "status", timeout=10)
        except DaemonUnavailable:
            return {"slots": []}
        return data

    def slot(self, camera: MockCamera) -> dict[str, Any] | None:
        status = self.fast_status()
        return next((s for s in status["slots"] if s["slot"] == camera.slot), None)

    def wait_slot(
        self, camera: MockCamera, *states: str, timeout: float = 90, after: int | None = None
    ) -> dict[str, Any]:
        """Wait for the slot to reach one of `states`; with `after`, in a session later
        than that one (the slot shows the last docking's end until the next one begins)."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            slot = self.slot(camera)
            if after is not None and (slot is None or (slot["session"] or 0) <= after):
                return False
            if slot is not None and slot["state"] in states:
                found.update(slot)
                return True
            return False

        wait_for(reached, timeout, f"slot {camera.slot} to reach {states}", self.logs)
        return found

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def recordings(self) -> list[dict[str, Any]]:
        proc = self.cli("list", "--json")
        assert proc.returncode == 0, proc.stderr
        rows: list[dict[str, Any]] = json.loads(proc.stdout)
        return rows


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    context: Callable[[], str] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}\n{context() if context else ''}"
    )


@pytest.fixture
def dock(tmp_path: Path) -> Iterator[Dock]:
    config = tmp_path / "dockd.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[ingest]\nmin_free_bytes = 0\nchange_retry_delay = 0\n"
        f'[daemon]\nruntime_dir = "{tmp_path / "run"}"\nmount_backend = "fuse"\nworkers = 2\n',
        encoding="utf-8",
    )
    with udev_testbed() as tb:
        d = Dock(tmp_path, tb, config, tmp_path / "state", tmp_path / "run")
        try:
            yield d
        finally:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait(30)
            # Whatever the daemon left mounted must not keep loop devices busy.
            mounts = tmp_path / "run" / "mounts"
            for path in mounts.glob("*") if mounts.exists() else []:
                if is_mounted(path):
                    subprocess.run(["fusermount", "-uz", str(path)], capture_output=True)


@contextmanager
def camera_image(
    tmp: Path, serial: str, files: dict[str, bytes | Path], size_mib: int = 64
) -> Iterator[tuple[Path, str]]:
    image = make_fat32_image(tmp / f"{serial}.img", size_mib)
    for rel, data in files.items():
        fat_put(image, rel, data)
    with loop_device(image) as dev:
        yield image, dev


def _clips(clip_bank: list[Path], serial: str, n: int = 3) -> dict[str, bytes | Path]:
    return {f"{FOLDER}/{_name(i, serial)}": clip_bank[i] for i in range(n)}


def _random(size: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)


def _content(data: bytes | Path) -> bytes:
    return data.read_bytes() if isinstance(data, Path) else data


def _assert_each_file_safe_once(dock: Dock, image: Path, files: dict[str, bytes | Path]) -> None:
    """Invariant 1: every file is in the store (once, intact) or still on the camera."""
    rows = dock.recordings()
    stored = {r["source_path"]: r for r in rows}
    assert len(stored) == len(rows), "no file ingested twice"
    on_camera = fat_files(image)
    for rel, data in files.items():
        content = _content(data)
        assert rel in stored or rel in on_camera, f"{rel} is lost"
        if rel in stored:
            assert (dock.state / "store" / stored[rel]["store_path"]).read_bytes() == content
        if rel in on_camera:
            assert fat_read(image, rel) == content
    assert not list((dock.state / "store" / "tmp").iterdir()), "no partial copy left"


def test_docked_camera_is_ingested_wiped_and_unmounted(dock: Dock, clip_bank: list[Path]) -> None:
    files = _clips(clip_bank, "CAM0001")
    with camera_image(dock.tmp, "CAM0001", files) as (image, dev):
        dock.start()
        cam = dock.tb.add_camera("CAM0001", port=1, devnode=dev)
        dock.tb.uevent(cam.volume, "add")  # udev may repeat itself: shrugged off
        slot = dock.wait_slot(cam, "done", "error")
        assert slot["state"] == "done", slot
        assert slot["serial"] == "CAM0001" and slot["profile"] == "gat947"
        assert slot["counts"]["ingested"] == 3 and slot["counts"]["wiped"] == 3
        assert slot["files_done"] == slot["files_total"] == 3
        # fusefat reports no sizes through statfs; the kernel's vfat and exfat-fuse do.
        assert set(slot["health"]) >= {"free_bytes", "total_bytes", "clock_offset_s"}
        rows = dock.recordings()
        assert sorted(r["source_path"] for r in rows) == sorted(files)
        assert {r["device_serial"] for r in rows} == {"CAM0001"}
        assert fat_files(image) == set(), "cleared after proof"
        assert not any((dock.runtime / "mounts").iterdir()), "unmounted, mount point removed"
        status = dock.status()
        assert status is not None
        (recent,) = status["recent"]
        assert recent["serial"] == "CAM0001" and recent["state"] == "done"
        assert dock.cli("verify").returncode == 0
        # A manual ingest while the daemon owns the state is refused at once, untouched.
        manual = dock.tmp / "manual"
        (manual / "DCIM").mkdir(parents=True)
        (manual / "DCIM" / "x.mp4").write_bytes(b"x")
        refused = dock.cli("ingest", str(manual), "--serial", "X1")
        assert refused.returncode == 4 and "drop folder" in refused.stderr, refused.stderr
        assert (manual / "DCIM" / "x.mp4").read_bytes() == b"x"
        show = json.loads(dock.cli("show", "1", "--json").stdout)
        assert show["log_entry"]["data"]["unit"] is None  # no assignment yet
        session = json.loads(dock.cli("device", "list", "--json").stdout)
        assert session[0]["serial"] == "CAM0001" and session[0]["last_slot"] == cam.slot
        assert session[0]["vendor"] == "ACME" and session[0]["model"] == "BodyCam"
        assert dock.stop() == 0
    logs = dock.logs()
    for event in ("dock.detected", "mount.mounted", "session.done", "mount.unmounted"):
        assert f"event='{event}'" in logs or f'"{event}"' in logs or event in logs, event
    assert logs.count("session.start") == 1, "the duplicate add started no second session"


def test_two_cameras_at_once_and_a_third_while_both_copy(dock: Dock, clip_bank: list[Path]) -> None:
    serials = ("CAMA001", "CAMB002", "CAMC003")
    sets = {s: _clips(clip_bank, s, 2) for s in serials}
    # Big files for the first two so that the third arrives while both copy.
    for i, s in enumerate(serials[:2]):
        sets[s] |= {f"{FOLDER}/{_name(10 + k, s)}": _random(12 << 20, 10 * i + k) for k in range(2)}
    with ExitStack() as stack:
        images = {s: stack.enter_context(camera_image(dock.tmp, s, sets[s])) for s in serials}
        dock.start()
        cams = {}
        for port, s in enumerate(serials[:2], start=1):
            cams[s] = dock.tb.add_camera(s, port=port, devnode=images[s][1])
        for s in serials[:2]:
            dock.wait_slot(cams[s], "copying", "scanning", "wiping", "done")
        cams[serials[2]] = dock.tb.add_camera(serials[2], port=3, devnode=images[serials[2]][1])
        for s in serials:
            slot = dock.wait_slot(cams[s], "done", "error", timeout=180)
            assert slot["state"] == "done", slot
        for s in serials:
            assert fat_files(images[s][0]) == set()
        rows = dock.recordings()
        assert len(rows) == sum(len(f) for f in sets.values())
        for s in serials:
            assert sorted(r["source_path"] for r in rows if r["device_serial"] == s) == sorted(
                sets[s]
            )
        assert dock.cli("verify").returncode == 0


def _slow_camera(serial: str, files: int = 36) -> dict[str, bytes | Path]:
    # Many mid-sized files: a remove or a stop lands mid-copy with files on both sides
    # (36, so that the rest still takes seconds after the first, however fast the
    # machine: with 20, a whole copy once finished before a SIGTERM landed).
    return {f"{FOLDER}/{_name(i, serial)}": _random(8 << 20, i) for i in range(files)}


def _dock_slow_camera(dock: Dock, serial: str, port: int, dev: str, copied: int) -> MockCamera:
    """Start the daemon with a small copy buffer, dock the camera, wait until `copied`
    files are done: the next step then lands mid-copy."""
    dock.config.write_text(
        dock.config.read_text().replace("[ingest]\n", "[ingest]\nbuffer_size = 4096\n")
    )
    dock.start()
    cam = dock.tb.add_camera(serial, port=port, devnode=dev)
    wait_for(
        lambda: (dock.slot(cam) or {}).get("files_done", 0) >= copied,
        120,
        f"{copied} file(s) copied",
        dock.logs,
    )
    return cam


def test_camera_removed_mid_copy_then_docked_again(dock: Dock) -> None:
    files = _slow_camera("CAMR001")
    with camera_image(dock.tmp, "CAMR001", files, size_mib=448) as (image, dev):
        cam = _dock_slow_camera(dock, "CAMR001", 1, dev, 2)
        dock.tb.unplug(cam)
        wait_for(
            lambda: not any((dock.runtime / "mounts").glob("*")),
            60,
            "the daemon to unmount the removed camera",
            dock.logs,
        )
        slot = dock.wait_slot(cam, "error")
        assert "camera removed" in slot["error"], slot
        first_session = slot["session"]
        assert fat_files(image) == set(files), "nothing wiped from an interrupted session"
        _assert_each_file_safe_once(dock, image, files)
        done_before = len(dock.recordings())
        assert 2 <= done_before < len(files), done_before

        cam = dock.tb.add_camera("CAMR001", port=1, devnode=dev)  # docked again
        slot = dock.wait_slot(cam, "done", "error", timeout=180, after=first_session)
        assert slot["state"] == "done", slot
        assert slot["counts"]["duplicates"] == done_before
        assert slot["counts"]["ingested"] == len(files) - done_before
        rows = dock.recordings()
        assert sorted(r["source_path"] for r in rows) == sorted(files), "each file exactly once"
        assert fat_files(image) == set()
        assert dock.cli("verify").returncode == 0
        dock.tb.unplug(cam)  # taken out after its session: the slot is free again
        wait_for(lambda: dock.slot(cam) is None, 30, "the slot to be freed", dock.logs)
    assert "session.interrupted" not in dock.logs(), "ended cleanly, not by recovery"


def test_sigterm_mid_copy_stops_cleanly_and_a_restart_resumes(dock: Dock) -> None:
    files = _slow_camera("CAMT001")
    with camera_image(dock.tmp, "CAMT001", files, size_mib=448) as (image, dev):
        cam = _dock_slow_camera(dock, "CAMT001", 1, dev, 1)
        started = time.monotonic()
        assert dock.stop(signal.SIGTERM) == 0
        took = time.monotonic() - started
        assert took < 60, f"stopping took {took:.1f} s"
        assert not any(is_mounted(p) for p in (dock.runtime / "mounts").glob("*"))
        _assert_each_file_safe_once(dock, image, files)
        logs = dock.logs()
        assert "ingest.stopped" in logs and "daemon.stopped" in logs
        before = len(dock.recordings())
        assert before < len(files)

        dock.start()  # the camera is still docked: found by enumeration at start-up
        slot = dock.wait_slot(cam, "done", "error", timeout=180)
        assert slot["state"] == "done", slot
        rows = dock.recordings()
        assert sorted(r["source_path"] for r in rows) == sorted(files)
        assert fat_files(image) == set()
        assert dock.cli("verify").returncode == 0
        # The first run's session was closed by the daemon, not left for recovery.
        assert "recovery.session_interrupted" not in dock.logs()
    assert os.path.exists(dock.state / "catalog.sqlite")


def test_camera_replugged_before_its_session_ended_is_docked_again(dock: Dock) -> None:
    """Pulled and pushed back at once: the new docking waits for the old session to let
    go of the slot, then ingests the rest; nothing is lost or ingested twice."""
    files = _slow_camera("CAMP001")
    with camera_image(dock.tmp, "CAMP001", files, size_mib=448) as (image, dev):
        cam = _dock_slow_camera(dock, "CAMP001", 2, dev, 1)
        dock.tb.unplug(cam)
        cam = dock.tb.add_camera("CAMP001", port=2, devnode=dev)
        slot = dock.wait_slot(cam, "done", timeout=180)
        assert slot["counts"]["failed"] == 0, slot
        assert slot["counts"]["duplicates"] >= 1, "the first session had ingested some"
        assert dock.logs().count("session.start") == 2
        assert "ingest.stopped" in dock.logs(), "the first session was interrupted"
        rows = dock.recordings()
        assert sorted(r["source_path"] for r in rows) == sorted(files), "each file exactly once"
        assert fat_files(image) == set()
        assert dock.cli("verify").returncode == 0
