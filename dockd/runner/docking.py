"""The daemon's docking half: cameras from udev to a worker's session, and their slots.

Threads (runner/daemon.py's docstring has the whole picture): the monitor
callback only queues; the preparer mounts, reads health, picks the profile
and the deadline; workers take the earliest deadline first (EDF, rule R1).
Every SlotState changes under `_lock`.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from dockd.clock import Clock, isoformat_utc
from dockd.config import Config
from dockd.devices.health import read_health
from dockd.devices.identity import DeviceIdentity, DockEvent
from dockd.devices.matching import list_names, profile_for, recognise_layout
from dockd.devices.mount import Mounter
from dockd.devices.profiles import make_profile
from dockd.errors import DockdError
from dockd.runner.dropfolder import DropFolder, ingest_batch
from dockd.runner.replication import Uploader
from dockd.runner.session import Failure, SessionReport, run_session, wipe_uploaded
from dockd.runner.slots import (
    LAYOUT_LISTING_LIMIT,
    Notifier,
    SlotState,
    _Job,
    _SlotProgress,
    estimate_deadline,
    outcome_problem,
)
from dockd.service import FileOutcome, Service

log = structlog.get_logger("dockd.daemon")


class Docking:
    """Mixed into Daemon, which sets these attributes up in its __init__."""

    config: Config
    clock: Clock
    notify: Notifier
    service: Service | None
    mounter: Mounter
    _lock: threading.RLock
    _slots: dict[str, SlotState]
    _recent: deque[dict[str, Any]]
    _jobs: list[_Job]  # a heap, under _lock
    _job_ready: threading.Condition
    _by_sys_path: dict[str, _Job]
    _mounted_slots: set[str]
    _seq: itertools.count[int]
    _prepare: queue.Queue[DockEvent | None]
    _stopping: threading.Event
    _drop: DropFolder | None
    _uploader: Uploader | None
    # Dockings whose files wait for the bucket (replicate.require_before_wipe).
    _held: list[tuple[_Job, int, list[FileOutcome]]]
    _held_ready: threading.Condition

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

    def _officer_of(self, serial: str) -> str | None:
        """Who has the camera now, for its tile; a catalog that cannot say never stops
        a docking (the tile then shows the serial alone)."""
        try:
            return self.service.officer_of(serial) if self.service is not None else None
        except Exception as exc:
            log.warning("dock.officer_unknown", serial=serial, reason=str(exc))
            return None

    def _prepare_camera(self, identity: DeviceIdentity) -> None:
        officer = self._officer_of(identity.serial)
        with self._lock:
            if identity.sys_path in self._by_sys_path:
                return  # a duplicate add: already known
            key = identity.slot
            job = _Job(self.clock.now(), next(self._seq), key, identity=identity)
            self._by_sys_path[identity.sys_path] = job
            self._slots[key] = SlotState(
                key, identity.serial, identity.devnode, officer, since=self._now(), _owner=job.seq
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
            waiting = len(self._jobs)
            self._job_ready.notify()
        # The queue's order is the deadline's: said here so that the journal shows it.
        log.info(
            "slot.state",
            slot=job.key,
            state="queued",
            deadline=isoformat_utc(job.deadline),
            waiting=waiting,
        )
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
        if self._uploader is not None:
            self._uploader.wake()  # the session's objects and checkpoint are queued
        reason = outcome_problem(report, removed=job.cancelled.is_set())
        waiting = bool(report.held) and reason is None and job.mounted is not None
        if waiting:
            # Kept mounted (read-only) until the bucket holds its files; another
            # thread wipes them then (`_wipe_when_uploaded`). Workers move on.
            with self._lock:
                self._held.append((job, report.session_id, list(report.held)))
                self._held_ready.notify()
        else:
            self._release(job)
        state = "waiting for upload" if waiting else "done" if reason is None else "error"
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

    def _wipe_when_uploaded(self) -> None:
        """The thread of `replicate.require_before_wipe`: each held docking's files are
        wiped once all are verified in the bucket; a camera taken out before keeps them
        (the next docking finds them duplicates, and wipes them once uploaded)."""
        while not self._stopping.is_set():
            with self._lock:
                if not self._held:
                    self._held_ready.wait(5.0)
                held = list(self._held)
            for job, session_id, outcomes in held:
                if self._stopping.is_set():
                    break
                self._try_held(job, session_id, outcomes)
            self._stopping.wait(2.0)
        with self._lock:
            held, self._held = list(self._held), []
        for job, _, _ in held:
            self._release(job)

    def _try_held(self, job: _Job, session_id: int, outcomes: list[FileOutcome]) -> None:
        assert self.service is not None
        if job.cancelled.is_set():
            self._unhold(job)
            self._release(job)
            self._update(
                job,
                state="error",
                since=self._now(),
                error=f"taken out before the upload: {len(outcomes)} file(s) kept on the "
                "camera; dock it again to finish",
            )
            log.warning("slot.undocked_before_upload", slot=job.key, files=len(outcomes))
            return
        verified = self.service.replicated([o.recording.sha256 for o in outcomes])
        if not all(o.recording.sha256 in verified for o in outcomes):
            return
        assert job.mounted is not None
        self._set_state(job, "wiping")
        try:
            wiped, failed = wipe_uploaded(
                self.service, job.mounted.path, job.mounted.writable, outcomes
            )
        except (DockdError, OSError) as exc:
            wiped, failed = [], [Failure(o.found.display, str(exc)) for o in outcomes]
        self.service.record_late_wipe(session_id, wiped)
        self._unhold(job)
        self._release(job)
        with self._lock:
            slot = self._slot_of(job)
            if slot is not None:
                slot.counts = {
                    **slot.counts,
                    "wiped": slot.counts.get("wiped", 0) + len(wiped),
                    "wipe_failed": slot.counts.get("wipe_failed", 0) + len(failed),
                    "waiting_for_upload": 0,
                }
                slot.state = "done" if not failed else "error"
                slot.error = (
                    f"{len(failed)} file(s) not wiped: {failed[0].reason}" if failed else None
                )
                slot.since = self._now()
        log.info("slot.state", slot=job.key, state="done", wiped=len(wiped), after="upload")
        self._status_changed()

    def _unhold(self, job: _Job) -> None:
        with self._lock:
            self._held = [h for h in self._held if h[0] is not job]

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

    # -- slot state for `dockd status` -----------------------------------------------------

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
