"""`dockd run`: the dock's service under systemd.

Threads and who owns what:
- main: signals, sd_notify (READY, STATUS, WATCHDOG), reloads, shutdown.
  The watchdog is pinged from here only, so a wedged or stopped main loop
  lets systemd restart the service.
- udev monitor (devices/monitor.py): turns uevents into DockEvents; the
  callback only queues.
- preparer: mounts each new camera read-only, reads its health, picks its
  profile and estimates its deadline, then queues it.
- workers (daemon.workers): take the queued camera with the earliest
  deadline (EDF: oldest footage first, rule R1) and run its session.
- scheduler (APScheduler): hourly checkpoint, fixity audit slices, overdue
  device check.
- API server (api.py): `dockd status` and changes asked for by the CLI.

All catalog and store writes go through the one Service (service.py),
whose catalog serialises transactions across these threads.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from dockd import __version__
from dockd.api import ApiServer, socket_path
from dockd.cli_common import checkpoint_json
from dockd.clock import Clock, SystemClock, isoformat_utc
from dockd.config import Config, load_config
from dockd.devices.health import read_health
from dockd.devices.identity import DeviceHealth, DeviceIdentity, DockEvent
from dockd.devices.matching import list_names, profile_for, recognise_layout
from dockd.devices.mount import MountedVolume, Mounter
from dockd.devices.profiles import Profile, make_profile
from dockd.devices.usbhook import UsbWatcher
from dockd.errors import ConfigError, DockdError
from dockd.ingest.dropfolder import DropBatch, DropFolder, ingest_batch
from dockd.ingest.scanner import FoundFile
from dockd.ingest.session import SessionReport, run_session
from dockd.operations import OPERATIONS, perform
from dockd.retention.compliance import OFFLOAD_WINDOW
from dockd.service import Service

log = structlog.get_logger("dockd.daemon")

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

    def __init__(self, daemon: Daemon, job: _Job) -> None:
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


class Daemon:
    def __init__(
        self,
        config: Config,
        config_path: Path | None = None,
        clock: Clock | None = None,
        *,
        udev: bool = True,
        notifier: Notifier | None = None,
        state_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.state_dir_option = state_dir  # --state-dir: wins over the file on reload too
        self.clock: Clock = clock or SystemClock()
        self.udev = udev
        self.notify = notifier or Notifier()
        self._lock = threading.RLock()
        self._slots: dict[str, SlotState] = {}
        self._recent: deque[dict[str, Any]] = deque(maxlen=config.daemon.recent_sessions)
        self._jobs: list[_Job] = []  # a heap, under _lock
        self._job_ready = threading.Condition(self._lock)
        self._by_sys_path: dict[str, _Job] = {}
        self._mounted_slots: set[str] = set()
        self._seq = itertools.count()
        self._prepare: queue.Queue[DockEvent | None] = queue.Queue()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._reload = threading.Event()
        self._workers: list[threading.Thread] = []
        self._started_at = self.clock.now()
        self.service: Service | None = None
        self.mounter = Mounter(
            config.daemon.mount_backend,
            config.daemon.runtime_dir,
            config.daemon.mount_timeout,
            config.profiles.camera_timezone,
        )
        self._api: ApiServer | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._monitor: Any = None
        self._drop: DropFolder | None = None
        self._usb: UsbWatcher | None = None

    # -- life cycle ----------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the process exit code."""
        self._install_signals()
        self.notify("STATUS=starting: recovering state")
        self.service = Service(self.config, self.clock)
        try:
            self._start_parts()
            self.notify("READY=1")
            self._status_changed()
            log.info(
                "daemon.started",
                version=__version__,
                workers=self.config.daemon.workers,
                mount_backend=self.config.daemon.mount_backend,
                socket=str(socket_path(self.config)),
            )
            self._main_loop()
        finally:
            self._shutdown()
        return 0

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: object) -> None:
            log.info("daemon.stopping", signal=signal.Signals(signum).name)
            self._stopping.set()
            self._wake.set()
            with self._lock:
                self._job_ready.notify_all()

        def reload(_signum: int, _frame: object) -> None:
            self._reload.set()
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _start_parts(self) -> None:
        self.config.daemon.runtime_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._api = ApiServer(
            socket_path(self.config), self.handle, self.config.daemon.socket_group
        )
        self._api.start()
        for n in range(self.config.daemon.workers):
            worker = threading.Thread(target=self._worker, name=f"dockd-worker-{n}", daemon=True)
            worker.start()
            self._workers.append(worker)
        threading.Thread(target=self._preparer, name="dockd-prepare", daemon=True).start()
        self._start_scheduler()
        self._start_drop()
        if self.udev:
            from dockd.devices.monitor import UdevMonitor

            self._monitor = UdevMonitor(self.config.devices, self._on_dock_event)
            self._monitor.start()
            if self.config.devices.usb_hooks:
                self._usb = UsbWatcher(self.config.devices.rules)
                self._usb.start()

    def _main_loop(self) -> None:
        interval = Notifier.watchdog_interval()
        while not self._stopping.is_set():
            self._wake.wait(timeout=min(interval or 5.0, 5.0))
            self._wake.clear()
            if interval is not None:
                self.notify("WATCHDOG=1")
            if self._reload.is_set():
                self._reload.clear()
                self.reload()

    def _shutdown(self) -> None:
        """Stop taking work, let sessions end between files, unmount, close."""
        self._stopping.set()
        self.notify("STOPPING=1")
        self.notify("STATUS=stopping: finishing the current files")
        if self._usb is not None:
            self._usb.stop()
        if self._monitor is not None:
            self._monitor.stop()
        if self._drop is not None:
            self._drop.stop()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
        self._prepare.put(None)
        with self._lock:
            self._job_ready.notify_all()
        for worker in self._workers:
            worker.join()
        with self._lock:
            waiting = list(self._jobs)
            self._jobs.clear()
        for job in waiting:
            self._release(job)
        if self._api is not None:
            self._api.stop()
        if self.service is not None:
            self.service.close()
        log.info("daemon.stopped")

    def reload(self) -> None:
        """SIGHUP: re-read the configuration; what cannot change live is refused."""
        try:
            new = load_config(self.config_path, self.state_dir_option)
        except ConfigError as exc:
            log.error("daemon.reload_failed", reason=str(exc))
            self.notify(f"STATUS=reload failed: {exc}")
            return
        fixed = {
            "state_dir": (self.config.state_dir, new.state_dir),
            "daemon.runtime_dir": (self.config.daemon.runtime_dir, new.daemon.runtime_dir),
            "daemon.workers": (self.config.daemon.workers, new.daemon.workers),
            "daemon.drop_dir": (self.config.daemon.drop_dir, new.daemon.drop_dir),
        }
        kept = [name for name, (old, now) in fixed.items() if old != now]
        for name in kept:
            log.warning("daemon.reload_needs_restart", key=name)
        new = dataclasses.replace(
            new,
            state_dir=self.config.state_dir,
            daemon=dataclasses.replace(
                new.daemon,
                runtime_dir=self.config.daemon.runtime_dir,
                workers=self.config.daemon.workers,
                drop_dir=self.config.daemon.drop_dir,
            ),
        )
        from dockd import logs

        logs.configure(new.log.level, new.log.format)
        with self._lock:
            self.config = new
            if self.service is not None:
                self.service.config = new
            # The same Mounter: it knows which slots hold a live mount.
            self.mounter.backend = new.daemon.mount_backend
            self.mounter.timeout = new.daemon.mount_timeout
            self.mounter.camera_timezone = new.profiles.camera_timezone
        if self._monitor is not None:
            self._monitor.config = new.devices
        if self.service is not None:
            # A new retention preset is logged and every tier recomputed now.
            self.service.apply_retention_policy()
        self._start_scheduler()
        log.info("daemon.reloaded", needs_restart=",".join(kept))
        self._status_changed()

    # -- periodic jobs ----------------------------------------------------------------

    def _intervals(self) -> dict[str, tuple[float, Callable[[], Any]]]:
        d = self.config.daemon
        return {
            "checkpoint": (d.checkpoint_interval_minutes, self.periodic_checkpoint),
            "audit": (d.audit_interval_minutes, self.periodic_audit),
            "overdue": (d.overdue_check_interval_minutes, self.check_overdue),
            "sweep": (self.config.retention.sweep_interval_hours * 60, self.periodic_sweep),
        }

    def _start_scheduler(self) -> None:
        if self._scheduler is not None:
            # On reload: new intervals, same scheduler. Shutting it down would
            # wait for a running audit, and the main loop must keep pinging
            # the watchdog.
            for name, (minutes, _) in self._intervals().items():
                self._scheduler.reschedule_job(name, trigger="interval", minutes=minutes)
            return
        scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True})
        for name, (minutes, work) in self._intervals().items():
            scheduler.add_job(
                self._job(name, work), "interval", minutes=minutes, id=name, max_instances=1
            )
        scheduler.start()
        self._scheduler = scheduler

    def _job(self, name: str, work: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except Exception as exc:  # a failed job must not kill the scheduler
                log.exception("schedule.failed", job=name, reason=str(exc))

        return run

    def periodic_checkpoint(self) -> None:
        assert self.service is not None
        self.service.checkpoint()

    def periodic_audit(self) -> None:
        """One slice, sized so that the whole store is re-hashed every audit_period_days."""
        assert self.service is not None
        per_period = self.config.integrity.audit_period_days * 24 * 60
        fraction = min(1.0, self.config.daemon.audit_interval_minutes / per_period)
        self.service.audit(fraction)

    def periodic_sweep(self) -> dict[str, Any]:
        """The retention sweep; with retention.auto_delete off, only its plan is logged."""
        assert self.service is not None
        if self.config.retention.auto_delete:
            return self.service.sweep(actor="dockd (scheduled sweep)").summary()
        plan = self.service.retention_plan()
        log.info(
            "retention.plan",
            would_mark_pending=len(plan.mark_pending),
            would_delete=len(plan.delete),
            waiting=len(plan.waiting),
            protected=len(plan.protected),
            auto_delete=False,
        )
        return {"dry_run": True, **plan.as_json()}

    def check_overdue(self) -> list[str]:
        assert self.service is not None
        overdue = [d for d in self.service.devices() if d.overdue]
        for device in overdue:
            log.warning(
                "device.overdue",
                serial=device.serial,
                officer=device.current.officer if device.current else None,
                unit=device.current.unit if device.current else None,
                last_docked=device.last_docked,
            )
        return [d.serial for d in overdue]

    # -- drop folder ---------------------------------------------------------------------

    def _start_drop(self) -> None:
        root = self.config.daemon.drop_dir
        if not root:
            return
        self._drop = DropFolder(
            Path(root), self.config.daemon.drop_settle_seconds, self._on_drop_batch
        )
        self._drop.start()

    def _on_drop_batch(self, batch: DropBatch) -> None:
        key = f"drop:{batch.path.name}"
        name = batch.sidecar.profile or self.config.profiles.default_profile
        profile = make_profile(name, self.config.profiles)
        # Same deadline rule as a docked camera, so a batch does not jump the queue.
        names = list_names(batch.path, LAYOUT_LISTING_LIMIT)
        deadline = estimate_deadline(profile, names, self.clock.now())
        job = _Job(deadline, next(self._seq), key, batch=batch, profile=profile)
        with self._lock:
            self._prune_slots()
            self._slots[key] = SlotState(
                key,
                batch.sidecar.serial,
                str(batch.path),
                since=self._now(),
                profile=name,
                deadline=isoformat_utc(deadline),
                _owner=job.seq,
            )
        self._enqueue(job)

    def _prune_slots(self) -> None:
        """Forget finished drop batches beyond the last `recent_sessions` (dock slots stay)."""
        finished = sorted(
            (s for s in self._slots.values()
             if s.slot.startswith("drop:") and s.state in ("done", "error")),
            key=lambda s: s.since,
        )  # fmt: skip
        for slot in finished[: max(0, len(finished) - self.config.daemon.recent_sessions)]:
            del self._slots[slot.slot]

    # -- docking --------------------------------------------------------------------------

    def _on_dock_event(self, event: DockEvent) -> None:
        """From the monitor thread: queue; never block."""
        if event.action == "remove":
            self._removed(event.identity)
        else:
            self._prepare.put(event)

    def _removed(self, identity: DeviceIdentity) -> None:
        with self._lock:
            job = self._by_sys_path.get(identity.sys_path)
            if job is None:
                # Taken out after its session: the slot is free again.
                slot = self._slots.get(identity.slot)
                if slot is not None and slot.serial == identity.serial:
                    del self._slots[identity.slot]
                self._status_changed()
                return
            job.cancelled.set()
            # Forgotten now, so that docking it again is a new docking (which
            # waits for this one's worker to let go of the slot).
            self._by_sys_path.pop(identity.sys_path, None)
            if job in self._jobs:  # still waiting: forget it now
                self._jobs.remove(job)
                heapq.heapify(self._jobs)
                if self._slot_of(job) is not None:
                    del self._slots[job.key]
            else:
                return  # its worker sees the cancellation between chunks
        self._release(job)
        self._status_changed()

    def _preparer(self) -> None:
        while True:
            event = self._prepare.get()
            if event is None or self._stopping.is_set():
                return
            try:
                self._prepare_camera(event.identity)
            except Exception as exc:
                log.exception("dock.prepare_failed", serial=event.identity.serial, reason=str(exc))

    def _prepare_camera(self, identity: DeviceIdentity) -> None:
        with self._lock:
            if identity.sys_path in self._by_sys_path:
                return  # a duplicate add: already known
            key = identity.slot
            job = _Job(self.clock.now(), next(self._seq), key, identity=identity)
            self._by_sys_path[identity.sys_path] = job
            self._slots[key] = SlotState(
                key, identity.serial, identity.devnode, since=self._now(), _owner=job.seq
            )
        self._status_changed()
        self._wait_slot_released(key)
        log.info(
            "dock.accepted",
            serial=identity.serial,
            slot=identity.slot,
            devnode=identity.devnode,
            fs_type=identity.fs_type,
        )
        self._set_state(job, "mounting")
        try:
            job.mounted = self.mounter.mount(identity)
            with self._lock:
                self._mounted_slots.add(key)
        except DockdError as exc:
            self._fail(job, f"cannot mount: {exc}")
            return
        if job.cancelled.is_set():
            self._release(job)
            return
        root = job.mounted.path
        names = list_names(root, LAYOUT_LISTING_LIMIT)
        name = profile_for(identity, self.config.devices) or recognise_layout(
            names, self.config.profiles
        )
        job.profile = make_profile(name, self.config.profiles)
        job.health = read_health(root, self.clock.now())
        job.deadline = estimate_deadline(job.profile, names, self.clock.now())
        self._update(
            job,
            profile=name,
            deadline=isoformat_utc(job.deadline),
            health=job.health.as_json(),
        )
        self._enqueue(job)

    def _enqueue(self, job: _Job) -> None:
        with self._lock:
            heapq.heappush(self._jobs, job)
            slot = self._slot_of(job)
            if slot is not None:
                slot.state = "queued"
            self._job_ready.notify()
        self._status_changed()

    def _worker(self) -> None:
        while True:
            with self._lock:
                while not self._jobs and not self._stopping.is_set():
                    self._job_ready.wait()
                if self._stopping.is_set():
                    return
                job = heapq.heappop(self._jobs)
            try:
                self._run_job(job)
            except Exception as exc:
                log.exception("session.crashed", slot=job.key, reason=str(exc))
                self._fail(job, f"internal error: {type(exc).__name__}: {exc}")

    def _run_job(self, job: _Job) -> None:
        assert self.service is not None and job.profile is not None
        self._set_state(job, "scanning")
        should_stop: Callable[[], bool] = lambda: (  # noqa: E731
            self._stopping.is_set() or job.cancelled.is_set()
        )
        try:
            if job.batch is not None:
                assert self._drop is not None
                # ingest_batch gives the batch back to the drop folder whatever happens.
                report = ingest_batch(
                    self.service,
                    self._drop,
                    job.batch,
                    progress=_SlotProgress(self, job),
                    should_stop=should_stop,
                )
            else:
                assert job.identity is not None and job.mounted is not None
                report = run_session(
                    self.service,
                    job.mounted.path,
                    job.identity.serial,
                    job.profile,
                    wipe=self.config.ingest.wipe_after_verify,
                    progress=_SlotProgress(self, job),
                    device=job.identity,
                    health=job.health,
                    writable=job.mounted.writable,
                    should_stop=should_stop,
                )
        except DockdError as exc:
            self._fail(job, str(exc))
            return
        self._finished(job, report)

    def _finished(self, job: _Job, report: SessionReport) -> None:
        self._release(job)
        reason = outcome_problem(report, removed=job.cancelled.is_set())
        state = "done" if reason is None else "error"
        summary = {
            "session": report.session_id,
            "serial": report.serial,
            "slot": job.key,
            "state": report.state,
            "counts": report.counts(),
            "ended_at": self._now(),
        }
        with self._lock:
            self._recent.appendleft(summary)
            slot = self._slot_of(job)
            if slot is not None:
                slot.state = state
                slot.session = report.session_id
                slot.counts = report.counts()
                slot.since = self._now()
                slot.error = reason
        log.info(
            "slot.state",
            slot=job.key,
            serial=report.serial,
            state=state,
            session=report.session_id,
        )
        self._status_changed()

    def _fail(self, job: _Job, reason: str) -> None:
        log.error("slot.error", slot=job.key, reason=reason)
        self._release(job)
        with self._lock:
            slot = self._slot_of(job)
            if slot is not None:
                slot.state = "error"
                slot.error = reason
                slot.since = self._now()
        self._status_changed()

    def _wait_slot_released(self, key: str) -> None:
        """A camera re-docked in its slot waits until the removed one's worker let go."""
        deadline = time.monotonic() + 4 * self.config.daemon.mount_timeout
        while time.monotonic() < deadline:
            with self._lock:
                if key not in self._mounted_slots:
                    return
            time.sleep(0.1)

    def _release(self, job: _Job) -> None:
        """Unmount and forget a camera; the slot's last state stays for `status`."""
        if job.mounted is not None:
            try:
                job.mounted.unmount()
            except DockdError as exc:
                log.error("mount.unmount_failed", slot=job.key, reason=str(exc))
            with self._lock:
                self._mounted_slots.discard(job.key)
        if job.identity is not None:
            with self._lock:
                if self._by_sys_path.get(job.identity.sys_path) is job:
                    del self._by_sys_path[job.identity.sys_path]

    # -- state for `dockd status` -----------------------------------------------------

    def _now(self) -> str:
        return isoformat_utc(self.clock.now())

    def _slot_of(self, job: _Job) -> SlotState | None:
        """The job's slot state, unless a newer docking of the slot took it over."""
        slot = self._slots.get(job.key)
        return slot if slot is not None and slot._owner == job.seq else None

    def _update(self, job: _Job, **values: Any) -> None:
        with self._lock:
            slot = self._slot_of(job)
            if slot is None:
                return
            for name, value in values.items():
                setattr(slot, name, value)
        self._status_changed()

    def _set_state(self, job: _Job, state: str) -> None:
        self._update(job, state=state, since=self._now())
        log.info("slot.state", slot=job.key, state=state)

    def _status_changed(self) -> None:
        with self._lock:
            busy = [s for s in self._slots.values() if s.state not in ("done", "error", "queued")]
            waiting = len(self._jobs)
        text = (
            f"{len(busy)} camera(s) in progress, {waiting} waiting"
            if busy or waiting
            else "idle: waiting for cameras"
        )
        self.notify(f"STATUS={text}")

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "daemon": {
                    "pid": os.getpid(),
                    "version": __version__,
                    "started_at": isoformat_utc(self._started_at),
                    "workers": self.config.daemon.workers,
                    "waiting": len(self._jobs),
                    "mount_backend": self.config.daemon.mount_backend,
                    "stopping": self._stopping.is_set(),
                },
                "slots": [s.as_json() for s in sorted(self._slots.values(), key=lambda s: s.slot)],
                "recent": list(self._recent),
            }

    # -- the socket API --------------------------------------------------------------

    def handle(self, op: str, args: dict[str, Any], actor: str) -> Any:
        """One request from the socket (api.py); changes are made by the one Service."""
        assert self.service is not None
        if op == "status":
            return self.status()
        if op == "devices":
            return [d.as_json() for d in self.service.devices()]
        if op == "checkpoint":
            return checkpoint_json(self.service)
        if op == "audit":
            fraction = args.get("fraction")
            return self.service.audit(None if fraction is None else float(fraction)).as_json()
        if op == "key.rotate":
            return {"vkey": self.service.rotate_key().to_text()}
        if op == "reload":
            self._reload.set()
            self._wake.set()
            return {"reloading": True}
        if op in OPERATIONS:
            return perform(self.service, op, args, actor)
        raise DockdError(f"unknown request {op!r}")


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
