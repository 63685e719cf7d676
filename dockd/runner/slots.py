"""What the daemon knows of each dock slot and waiting job, for `dockd status`.

Values and small helpers only; the daemon's docking half (docking.py)
mutates them under Daemon._lock.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dockd.devices.identity import DeviceHealth, DeviceIdentity
from dockd.devices.mount import MountedVolume
from dockd.devices.profiles import Profile
from dockd.ingest.scanner import FoundFile
from dockd.retention.compliance import OFFLOAD_WINDOW
from dockd.runner.dropfolder import DropBatch
from dockd.runner.session import SessionReport

if TYPE_CHECKING:
    from dockd.runner.docking import Docking

# Files listed to guess a camera's profile and deadline before its session.
LAYOUT_LISTING_LIMIT = 2000


# -- what `dockd status` shows --------------------------------------------------


@dataclass
class SlotState:
    """Live state of one dock slot (or drop batch); mutated under Daemon._lock."""

    slot: str
    serial: str
    source: str  # devnode, or the drop batch's folder
    state: str = "detected"  # detected mounting queued scanning copying wiping done error
    since: str = ""
    profile: str = ""
    deadline: str | None = None
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    rate_bps: float = 0.0
    session: int | None = None
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    health: dict[str, Any] | None = None
    _started: float = 0.0
    _owner: int = -1  # the _Job.seq this state describes; a re-docking takes the slot over

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("_")}


@dataclass(order=True)
class _Job:
    """A camera (or drop batch) waiting for a worker; ordered by deadline, then arrival."""

    deadline: datetime
    seq: int
    key: str = field(compare=False)
    identity: DeviceIdentity | None = field(compare=False, default=None)
    mounted: MountedVolume | None = field(compare=False, default=None)
    batch: DropBatch | None = field(compare=False, default=None)
    profile: Profile | None = field(compare=False, default=None)
    health: DeviceHealth | None = field(compare=False, default=None)
    cancelled: threading.Event = field(compare=False, default_factory=threading.Event)


class _SlotProgress:
    """Feeds a session's progress into its SlotState (session.ByteProgress): the
    dock's status moves by bytes within a file, not 0 then 100 % per clip."""

    def __init__(self, daemon: Docking, job: _Job) -> None:
        self.daemon = daemon
        self.job = job

    def advance(self, n: int) -> None:
        # Called per chunk: only the slot's counters, under the lock; the
        # status line (sd_notify) changes per file, in file_done.
        with self.daemon._lock:
            slot = self.daemon._slot_of(self.job)
            if slot is None:
                return
            slot.bytes_done = max(0, slot.bytes_done + n)
            elapsed = time.monotonic() - slot._started
            slot.rate_bps = slot.bytes_done / elapsed if elapsed > 0 else 0.0

    def start(self, files: int, total_bytes: int) -> None:
        self.daemon._update(
            self.job, files_total=files, bytes_total=total_bytes, _started=time.monotonic()
        )

    def file_done(self, found: FoundFile) -> None:
        with self.daemon._lock:
            slot = self.daemon._slot_of(self.job)
            if slot is None:
                return
            slot.files_done += 1  # its bytes came through advance()
        self.daemon._status_changed()

    def phase(self, name: str) -> None:
        self.daemon._set_state(self.job, name)


class Notifier:
    """sd_notify, or nothing when not started by systemd (NOTIFY_SOCKET unset)."""

    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._notify: Callable[[str], Any] | None = None
        if self.enabled:
            from systemd.daemon import notify

            self._notify = notify

    def __call__(self, message: str) -> None:
        if self._notify is not None:
            self._notify(message)

    @staticmethod
    def watchdog_interval() -> float | None:
        """Half of WATCHDOG_USEC in seconds, when systemd asked for pings."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and int(pid) != os.getpid()):
            return None
        return int(usec) / 2e6


def outcome_problem(report: SessionReport, *, removed: bool) -> str | None:
    """What an officer at the dock must know about a finished session, or None if all is well."""
    if report.state == "stopped" and removed:
        return "camera removed before the session finished; dock it again to resume"
    if report.state == "stopped":
        return "stopped because dockd is shutting down; resumes when it starts again"
    if report.state == "volume_gone":
        return "the camera's storage vanished (unplugged?); dock it again to resume"
    if report.failed:
        return f"{len(report.failed)} file(s) could not be ingested and stay on the camera"
    if report.wipe_failed:
        return f"{len(report.wipe_failed)} proven file(s) could not be cleared from the camera"
    return None


def estimate_deadline(profile: Profile, names: list[tuple[bytes, ...]], now: datetime) -> datetime:
    """The earliest offload deadline among the camera's footage, as far as names tell.

    Names without a time give none; a camera whose names say nothing is
    taken as due now + 24 h (it was at least recorded before docking).
    """
    starts = [
        start
        for parts in names
        if profile.skip_file(parts) is None
        and (start := profile.parse_name(parts[-1]).start) is not None
    ]
    return (min(starts) if starts else now) + OFFLOAD_WINDOW
