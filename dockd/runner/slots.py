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
    officer: str | None = None  # the number of the officer it is assigned to now, if any
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

    # How often the slot hears of bytes: per chunk would take the daemon's lock
    # thousands of times a second and starve the threads that need it (a stop
    # request, `dockd status`); a screen needs a few updates a second.
    FLUSH_BYTES = 4 << 20
    FLUSH_SECONDS = 0.25

    def __init__(self, daemon: Docking, job: _Job) -> None:
        self.daemon = daemon
        self.job = job
        self._pending = 0
        self._flushed = time.monotonic()

    def advance(self, n: int) -> None:
        self._pending += n
        now = time.monotonic()
        if abs(self._pending) >= self.FLUSH_BYTES or now - self._flushed >= self.FLUSH_SECONDS:
            self._flush(now)

    def _flush(self, now: float) -> None:
        pending, self._pending, self._flushed = self._pending, 0, now
        with self.daemon._lock:
            slot = self.daemon._slot_of(self.job)
            if slot is None:
                return
            slot.bytes_done = max(0, slot.bytes_done + pending)
            elapsed = now - slot._started
            slot.rate_bps = slot.bytes_done / elapsed if elapsed > 0 else 0.0

    def start(self, files: int, total_bytes: int) -> None:
        self.daemon._update(
            self.job, files_total=files, bytes_total=total_bytes, _started=time.monotonic()
        )

    def file_done(self, found: FoundFile) -> None:
        self._flush(time.monotonic())
        with self.daemon._lock:
            slot = self.daemon._slot_of(self.job)
            if slot is None:
                return
            slot.files_done += 1  # its bytes came through advance()
        self.daemon._status_changed()

    def phase(self, name: str) -> None:
        self.daemon._set_state(self.job, name)


@dataclass
class ExportState:
    """A long request the daemon runs in a worker thread (an export build), for `dockd status`."""

    key: str  # "export:<id>"
    op: str
    by: str | None
    state: str = "running"  # running done error
    since: str = ""
    ended: str | None = None
    discs_total: int = 0
    discs_done: int = 0
    disc: str | None = None  # the disc being built
    bytes_total: int = 0
    bytes_done: int = 0
    error: str | None = None
    _thread: str = ""  # the thread that runs it

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if not k.startswith("_")}


class ExportTracker:
    """Feeds an export's progress into its ExportState, under the daemon's lock."""

    def __init__(self, lock: threading.RLock, state: ExportState) -> None:
        self._lock = lock
        self.state = state
        self._through = 0  # bytes of the discs begun so far

    def disc(self, label: str, size: int) -> None:
        with self._lock:
            self.state.disc = label
            self._through += size

    def advance(self, n: int) -> None:
        with self._lock:
            self.state.bytes_done += n

    def done(self, label: str) -> None:
        with self._lock:
            self.state.discs_done += 1
            self.state.disc = None
            # A disc already built is only re-checked: its bytes count as done too.
            self.state.bytes_done = max(self.state.bytes_done, self._through)


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
