"""`dockd run`: the dock's service under systemd.

Threads and who owns what:
- main: signals, sd_notify (READY, STATUS, WATCHDOG), reloads, shutdown.
  The watchdog is pinged from here only, so a wedged or stopped main loop
  lets systemd restart the service.
- udev monitor (devices/monitor.py): turns uevents into DockEvents; the
  callback only queues.
- preparer: mounts each new camera read-only, reads its health, picks its
  profile and estimates its deadline, then queues it (docking.py).
- workers (daemon.workers): take the queued camera with the earliest
  deadline (EDF: oldest footage first, rule R1) and run its session
  (docking.py; the slot and job values are slots.py).
- scheduler (APScheduler): hourly checkpoint, fixity audit slices, overdue
  device check.
- HTTP server (front.py, monitoring.py): the API on the Unix socket (api.py:
  every request of the CLI, one lookup in the table of operations.py), the
  admin page, and the dock's screen (screen/). A long request (export build,
  resume, burn; audit) runs in a thread of its own (dockd-export-…), which
  the request's thread waits for; an export's progress is in `dockd status`.

All catalog and store writes go through the one Service (dockd/service/),
whose catalog serialises transactions across these threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler

from dockd import __version__
from dockd.access.roles import Caller, Identity, check, needed, roles_of
from dockd.clock import Clock, SystemClock, isoformat_utc
from dockd.config import Config
from dockd.devices.identity import DockEvent
from dockd.devices.matching import list_names
from dockd.devices.mount import Mounter
from dockd.devices.profiles import make_profile
from dockd.devices.usbhook import UsbWatcher
from dockd.errors import ConfigError, DockdError, NotPermitted, Stopping
from dockd.replicate.bucket import Bucket, BucketError
from dockd.runner.client import socket_path
from dockd.runner.docking import Docking
from dockd.runner.dropfolder import DropBatch, DropFolder
from dockd.runner.monitoring import Monitoring
from dockd.runner.operations import Host, Tracker, operation
from dockd.runner.replication import Uploader
from dockd.runner.slots import (
    LAYOUT_LISTING_LIMIT,
    ExportState,
    ExportTracker,
    Notifier,
    SlotState,
    _Job,
    estimate_deadline,
)
from dockd.service import FileOutcome, Service
from dockd.service.results import wire
from dockd.settings import load as load_config

log = structlog.get_logger("dockd.daemon")
# How often the folders of ended view grants are looked for and removed.
VIEWS_CHECK_MINUTES = 5.0

__all__ = ["Daemon"]


class Daemon(Docking, Monitoring):
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
            self.clock,
        )
        self._front: Any = None  # runner/front.py HttpServer: the API and the screen
        self._uploader: Uploader | None = None
        self._held: list[tuple[_Job, int, list[FileOutcome]]] = []
        self._held_ready = threading.Condition(self._lock)
        self._wiper: threading.Thread | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._monitor: Any = None
        self._drop: DropFolder | None = None
        self._usb: UsbWatcher | None = None
        self._exports: dict[str, ExportState] = {}  # under _lock
        self._long: list[threading.Thread] = []  # long requests running (under _lock)
        self._long_seq = itertools.count(1)

    # -- life cycle ----------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the process exit code."""
        self._install_signals()
        self.notify("STATUS=starting: recovering state")
        self.service = Service(self.config, self.clock)
        try:
            self.service.close_ended_views()  # grants that ended while dockd was down
            self._start_replication()  # a wrong bucket setting stops the start (exit 2)
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

    def _start_replication(self) -> None:
        """Check the bucket and start the uploader. A bucket that cannot hold evidence
        (no Object Lock, no versioning, wrong credentials, a clock it rejects) is a
        ConfigError: dockd does not start. One that does not answer is not: a dock
        works offline, and the uploader checks it again until it answers."""
        cfg = self.config.replicate
        if not cfg.enabled:
            return
        assert self.service is not None
        bucket = Bucket.open(cfg)
        try:
            bucket.check_target()
        except BucketError as exc:
            log.warning("replicate.unavailable", reason=str(exc))
        self._uploader = Uploader(self.service, bucket, self.clock)
        self._uploader.start()
        if cfg.require_before_wipe:
            self._wiper = threading.Thread(
                target=self._wipe_when_uploaded, name="dockd-wipe-after-upload", daemon=True
            )
            self._wiper.start()

    def _start_parts(self) -> None:
        self.config.daemon.runtime_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        self._start_front()
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
        metrics_written = 0.0
        while not self._stopping.is_set():
            self._wake.wait(timeout=min(interval or 5.0, 5.0))
            self._wake.clear()
            if time.monotonic() - metrics_written >= 60.0:
                metrics_written = time.monotonic()
                self._write_metrics_file()
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
        with self._lock:
            long = list(self._long)
        for thread in long:
            thread.join()  # an export under way ends its disc (images appear whole or not)
        if self._front is not None:
            self._front.stop()
            with contextlib.suppress(FileNotFoundError):
                socket_path(self.config).unlink()
        if self._uploader is not None:
            self._uploader.stop()
        if self._wiper is not None:
            with self._lock:
                self._held_ready.notify_all()
            self._wiper.join(60)  # a wipe under way ends first (it stops between files)
        with self._lock:
            held, self._held = self._held, []
        for job, _, _ in held:
            self._release(job)  # unmounted; its files stay on the camera for the next docking
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
            "replicate": (self.config.replicate, new.replicate),
        }
        kept = [name for name, (old, now) in fixed.items() if old != now]
        for name in kept:
            log.warning("daemon.reload_needs_restart", key=name)
        new = dataclasses.replace(
            new,
            state_dir=self.config.state_dir,
            replicate=self.config.replicate,
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
            # A view's read-only copies go within minutes of the grant's end (R6).
            "views": (VIEWS_CHECK_MINUTES, self.close_ended_views),
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

    def close_ended_views(self) -> list[str]:
        assert self.service is not None
        return self.service.close_ended_views()

    def check_overdue(self) -> list[str]:
        assert self.service is not None
        overdue = self.service.overdue_devices()
        for device in overdue:
            log.warning(
                "device.overdue",
                serial=device.serial,
                officer=device.officer,
                unit=device.unit,
                last_docked=isoformat_utc(device.last_docked) if device.last_docked else None,
                reasons=",".join(device.reasons),
                why=device.why(),
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
        officer = self._officer_of(batch.sidecar.serial)
        with self._lock:
            self._prune_slots()
            self._slots[key] = SlotState(
                key,
                batch.sidecar.serial,
                str(batch.path),
                officer,
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
                "exports": [e.as_json() for e in self._exports.values()],
                "replication": self._replication_status(),
            }

    def _replication_status(self) -> dict[str, Any] | None:
        if not self.config.replicate.enabled or self.service is None:
            return None
        status = self.service.replication_status().as_json(self.clock.now())
        if self._uploader is not None and self._uploader.problem:
            status["problem"] = self._uploader.problem
        return status

    # -- the socket API --------------------------------------------------------------

    def handle(self, op: str, args: dict[str, Any], who: Identity) -> Any:
        """One request of the HTTP API (api.py): one entry of the table (operations.py),
        if the caller's roles allow it (access/roles.py); a refusal is logged."""
        assert self.service is not None
        entry = operation(op)
        caller = Caller(who, roles_of(who, self.config.access))
        try:
            check(op, who, caller.roles)
        except NotPermitted as refused:
            ids = args.get("ids")
            named = [
                i for i in (ids if isinstance(ids, list) else [])
                if isinstance(i, int) and not isinstance(i, bool)
            ]  # fmt: skip
            self.service.log_denied(op, caller, needed(op), str(refused), named)
            raise
        entry.signature.check(op, args)
        host = _DaemonHost(self, self.service, caller)
        actor = caller.actor
        if not entry.long:
            return wire(entry.run(host, args, actor))
        return wire(self._in_thread(op, lambda: entry.run(host, args, actor)))

    def _in_thread(self, op: str, work: Callable[[], Any]) -> Any:
        """Run a long request in a thread of its own; the socket thread waits for it."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = work()
            except Exception as exc:  # handed to the socket thread, which answers with it
                outcome["error"] = exc

        thread = threading.Thread(target=run, name=f"dockd-{op}-{next(self._long_seq)}")
        with self._lock:
            if self._stopping.is_set():
                raise DaemonStopping("dockd is stopping: ask again when it has restarted")
            self._long.append(thread)
        thread.start()
        try:
            thread.join()
        finally:
            with self._lock:
                self._long.remove(thread)
                for state in self._exports.values():
                    if state._thread == thread.name and state.state == "running":
                        failed = outcome.get("error")
                        state.state = "error" if failed is not None else "done"
                        state.error = None if failed is None else str(failed) or repr(failed)
                        state.ended = self._now()
        if "error" in outcome:
            raise outcome["error"]
        if "result" not in outcome:
            raise DockdError(f"{op}: the request's thread ended without an answer")
        return outcome["result"]

    def _track(self, key: str, op: str, discs: int, total: int, actor: str | None) -> Tracker:
        state = ExportState(
            key, op, actor, since=self._now(), discs_total=discs, bytes_total=total,
            _thread=threading.current_thread().name,
        )  # fmt: skip
        with self._lock:
            self._exports.pop(key, None)  # a resume takes the finished entry over
            self._exports[key] = state
            finished = [k for k, e in self._exports.items() if e.state != "running"]
            for old in finished[: max(0, len(finished) - self.config.daemon.recent_sessions)]:
                del self._exports[old]
        return ExportTracker(self._lock, state)


class DaemonStopping(Stopping):
    """A long request asked for while the daemon shuts down."""


class _DaemonHost(Host):
    """The daemon as the host of a request: status and reload are its own."""

    def __init__(self, daemon: Daemon, service: Service, caller: Caller) -> None:
        super().__init__(service, caller=caller)
        self.daemon = daemon

    def outbox(self, out: Path, name: str) -> Path:
        """`<runtime>/out/<uid>/<name>`: the caller's (CAP_CHOWN), for the CLI to move to
        `out`; the daemon never writes into a path a caller names."""
        return self.service.outbox(self.caller, name)

    def status(self) -> dict[str, Any]:
        return self.daemon.status()

    def reload(self) -> dict[str, Any]:
        self.daemon._reload.set()
        self.daemon._wake.set()
        return {"reloading": True}

    def track(self, key: str, discs: int, total: int, actor: str | None) -> Tracker:
        return self.daemon._track(key, key.split(":")[0], discs, total, actor)
