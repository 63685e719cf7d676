"""The drop folder: manual imports of footage copied off cards with a card reader.

Layout (the contract with the people who copy cards; `daemon.drop_dir`):

    DROP/
      <batch>/                one folder per card, any name not starting with "."
        dockd-import.json     the sidecar, at the top of the batch (format below)
        DCIM/100MEDIA/...     the card's files, in any tree
      .<anything>             ignored: copy into `.incoming-x/` and rename it to
                              `x/` when done, and the batch appears complete

Sidecar `dockd-import.json`: one JSON object, UTF-8 (a BOM is tolerated), at
most 64 KiB, a regular file (a symlink, FIFO or device is refused unopened):

    {"serial": "CAM0001", "officer": "012345", "profile": "gat947", "note": "..."}

    serial   required  the camera's device serial: [A-Za-z0-9][A-Za-z0-9._-]{0,63}
    officer  optional  the officer's number: 1-64 printable characters
    profile  optional  a camera profile name (dockd.devices.profiles.PROFILES)
    note     optional  free text, at most 2000 characters
Optional keys may be null. Unknown keys, duplicate keys and values that are
not strings are refused, so a typo ("serail") never becomes an import with
no serial.

Life of a batch:
1. settling: its tree (names, kinds, sizes, mtimes) is snapshotted on every
   check. Any difference, or a watchdog event inside it, restarts the clock.
   Events only ever delay readiness; the snapshots decide, because inotify
   can drop events (queue overflow, watch limits) and polling covers that.
2. Once unchanged for `settle_seconds` it is judged: a valid sidecar and at
   least one file -> in flight (handed to `on_ready`, never handed out again
   until `done()`); otherwise held, with the reason logged once. A batch
   with no file yet (sidecar written before the copy) just waits.
3. `done(batch, success)`: if nothing but the sidecar and empty folders
   remain (the session wiped every proven file), the sidecar and folders are
   removed. Anything else keeps the batch in place, held, until its tree
   changes again, so an unchanged batch is never retried in a loop. A change
   made while it was in flight gets it judged again once settled; a kept
   batch that the operator empties later is removed then.

State is kept in memory and in the log only. Nothing is ever written into a
batch (an error file would change the tree being watched, could collide with
the card's own files, and needs write access the importer may not expect);
a restart therefore re-judges every batch once, which re-ingests nothing
(DESIGN invariant 4). dockd never unlinks anything in the drop folder but
the sidecar: removal uses rmdir, which fails on a folder that is not empty.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirModifiedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from dockd.clock import Clock, SystemClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.runner.batch import (
    DIR_FLAGS,
    MAX_DEPTH,
    MAX_ENTRIES,
    SIDECAR_MAX_BYTES,
    SIDECAR_NAME,
    BatchState,
    DropError,
    DropSidecar,
    Entry,
    Kind,
    Phase,
    Snapshot,
    changed_outside,
    due,
    folder_id,
    next_due,
    observe,
    read_sidecar,
    remove_batch,
    sidecar_problem,
    snapshot_tree,
    touch,
)
from dockd.runner.session import Progress, SessionReport, run_session
from dockd.service import Service

log = structlog.get_logger("dockd.ingest")

# Only events that mean "something was written": open/close-without-write
# come from readers (our own sidecar read, the session's copy) and would
# otherwise keep a batch settling for ever.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent, FileModifiedEvent,
    DirModifiedEvent, FileMovedEvent, DirMovedEvent, FileClosedEvent, FileAttribEvent,
    DirAttribEvent,
]  # fmt: skip

# Re-exported: the drop folder's whole vocabulary is importable from here.
__all__ = [
    "MAX_DEPTH", "MAX_ENTRIES", "SIDECAR_MAX_BYTES", "SIDECAR_NAME", "BatchState", "BatchStatus",
    "DropBatch", "DropError", "DropFolder", "DropSidecar", "Entry", "Kind", "Phase", "Snapshot",
    "changed_outside", "due", "ingest_batch", "next_due", "observe", "read_sidecar", "touch",
]  # fmt: skip


# -- the watcher ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DropBatch:
    """A settled batch handed to the consumer; give it back with `DropFolder.done`."""

    path: Path
    sidecar: DropSidecar
    files: int
    bytes: int
    ready_at: datetime
    # (st_dev, st_ino) of the folder judged; a consumer may check it before opening.
    folder: tuple[int, int]

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class BatchStatus:
    """One batch as `DropFolder.status` reports it (for the status page and CLI)."""

    name: str
    phase: str
    files: int
    bytes: int
    reason: str


class DropFolder:
    """Watch `root` for batches and hand each settled, valid one to `on_ready`.

    `on_ready` runs on the watcher's thread (or the caller of `check_now`)
    with no lock held; it should queue the batch and return. The consumer
    must call `done(batch, success)` exactly once per batch it was given.
    """

    def __init__(
        self,
        root: Path,
        settle_seconds: float,
        on_ready: Callable[[DropBatch], None],
        *,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        poll_interval: float | None = None,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        if settle_seconds < 0:
            raise DropError(f"settle time must not be negative, got {settle_seconds}")
        if poll_interval is not None and poll_interval <= 0:
            raise DropError(f"poll interval must be more than 0, got {poll_interval}")
        self.root = root
        self.settle = settle_seconds
        self._on_ready = on_ready
        self._clock: Clock = clock or SystemClock()
        self._monotonic = monotonic
        self._abs_root = os.path.abspath(root)
        # Polling is the safety net for lost events; deadlines wake the loop
        # on time whatever this is.
        self.poll_interval = poll_interval or max(settle_seconds, 1.0)
        self._debounce = min(0.25, settle_seconds / 4)
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._states: dict[str, BatchState] = {}
        self._ignored: dict[str, str] = {}
        self._root_problem: str | None = None
        self._next_due: float | None = None
        # Written by the observer thread under `_events_lock`.
        self._events_lock = threading.Lock()
        self._touched: dict[str, float] = {}
        self._quiet: frozenset[str] = frozenset()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None

    @classmethod
    def from_config(
        cls, config: Config, on_ready: Callable[[DropBatch], None], *, clock: Clock | None = None
    ) -> DropFolder | None:
        """The drop folder configured in `[daemon]`, or None when `drop_dir` is empty."""
        if not config.daemon.drop_dir:
            return None
        return cls(
            Path(config.daemon.drop_dir),
            config.daemon.drop_settle_seconds,
            on_ready,
            clock=clock,
        )

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching: a watchdog observer plus a loop thread that polls."""
        if self._thread is not None:
            raise DropError("the drop folder watcher is already running")
        if not self.root.is_dir():
            raise DropError(f"{self.root}: the drop folder is not a directory (daemon.drop_dir)")
        self._stop.clear()
        try:
            observer = Observer()
            observer.schedule(_Handler(self), self._abs_root, recursive=True, event_filter=_EVENTS)
            observer.start()
        except OSError as exc:
            # inotify watch limit, or a filesystem without inotify (some
            # network shares): polling alone still works, only slower.
            log.warning("drop.watch.unavailable", root=str(self.root), reason=str(exc))
        else:
            self._observer = observer
        self._thread = threading.Thread(target=self._run, name="dockd-drop", daemon=True)
        self._thread.start()
        log.info("drop.started", root=str(self.root), settle_seconds=self.settle)

    def stop(self) -> None:
        """Stop watching. Batches in flight stay in flight; `done` still works."""
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_now()
            except Exception as exc:  # the watcher must outlive any one bad pass
                log.error("drop.check.failed", root=str(self.root), reason=repr(exc))
            timeout = self.poll_interval
            deadline = self._next_due
            if deadline is not None:
                timeout = min(timeout, max(deadline - self._monotonic(), 0.0))
            if self._wake.wait(timeout):
                self._wake.clear()
                # A card copy makes thousands of events: gather them into one pass.
                self._stop.wait(self._debounce)

    def _event(self, path: str) -> None:
        """Called on the observer's thread for every change under `root`."""
        name = os.path.relpath(path, self._abs_root).split(os.sep, 1)[0]
        if name in (".", ".."):
            self._wake.set()  # the drop folder itself: batches came or went
            return
        if name.startswith("."):
            return
        with self._events_lock:
            self._touched[name] = self._monotonic()
        # A settling batch only needs its clock pushed back, which the
        # next pass does from `_touched`; anything else needs a look now.
        if name not in self._quiet:
            self._wake.set()

    # -- one pass --------------------------------------------------------------------------

    def check_now(self) -> tuple[DropBatch, ...]:
        """Look at every batch once; hand out (and return) those that became ready."""
        ready: list[DropBatch] = []
        with self._lock:
            self._pass(ready)
        for batch in ready:
            log.info(
                "drop.batch.ready",
                batch=batch.name,
                serial=batch.sidecar.serial,
                files=batch.files,
                bytes=batch.bytes,
            )
            try:
                self._on_ready(batch)
            except Exception as exc:
                # A consumer that cannot take the batch must not get it again
                # in a loop: treat it as a failed attempt.
                log.error("drop.batch.handoff_failed", batch=batch.name, reason=repr(exc))
                # DropError: the consumer already called done() before failing.
                with contextlib.suppress(DropError):
                    self.done(batch, success=False)
        return tuple(ready)

    def _pass(self, ready: list[DropBatch]) -> None:
        now = self._monotonic()
        with self._events_lock:
            touched, self._touched = self._touched, {}
        try:
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            names = sorted(os.listdir(root_fd))
        except OSError as exc:
            problem = f"cannot read the drop folder: {exc.strerror}"
            if problem != self._root_problem:
                log.error("drop.root.unavailable", root=str(self.root), reason=problem)
            self._root_problem = problem
            self._next_due = None
            return
        self._root_problem = None
        present: set[str] = set()
        ignored: dict[str, str] = {}
        try:
            for name in names:
                if name.startswith("."):
                    continue
                why = self._check_batch(root_fd, name, now, touched.get(name), ready)
                if why:
                    ignored[name] = why
                else:
                    present.add(name)
        finally:
            os.close(root_fd)
        for name, why in ignored.items():
            if self._ignored.get(name) != why:
                log.warning("drop.ignored", root=str(self.root), name=name, reason=why)
        self._ignored = ignored
        for name in set(self._states) - present:
            if self._states[name].phase is not Phase.IN_FLIGHT:
                log.info("drop.batch.gone", batch=name)
                del self._states[name]
        self._quiet = frozenset(n for n, s in self._states.items() if s.phase is not Phase.HELD)
        deadlines = [next_due(s, self.settle) for s in self._states.values()]
        self._next_due = min((d for d in deadlines if d is not None), default=None)

    def _check_batch(
        self, root_fd: int, name: str, now: float, touched_at: float | None, ready: list[DropBatch]
    ) -> str | None:
        """Update one batch; return why `name` is no batch at all, or None."""
        state = self._states.get(name)
        if state is not None and state.phase is Phase.IN_FLIGHT:
            return None
        try:
            fd = os.open(name, DIR_FLAGS, dir_fd=root_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                # Linux says ENOTDIR for a symlink opened O_DIRECTORY|O_NOFOLLOW.
                try:
                    link = stat.S_ISLNK(
                        os.stat(name, dir_fd=root_fd, follow_symlinks=False).st_mode
                    )
                except OSError:
                    return None  # gone since listed
                if link:
                    return "symbolic link (not followed): copy the card into a real folder"
                return "not a folder: put each card's files and its sidecar in a folder"
            if exc.errno == errno.ENOENT:
                return None  # gone since listed; the next pass forgets it
            return f"cannot open: {exc.strerror}"
        try:
            st = os.fstat(fd)
            folder = (st.st_dev, st.st_ino)
            try:
                snap = snapshot_tree(fd, max_entries=self._max_entries)
            except OSError as exc:
                return f"cannot read: {exc.strerror}"
            new = observe(state, folder, snap, now)
            if state is None or state.folder != folder:
                log.info("drop.batch.seen", batch=name, files=snap.files, bytes=snap.bytes)
            if touched_at is not None:
                new = touch(new, touched_at)
            if due(new, now, self.settle):
                judged = self._judge(root_fd, name, fd, new, now, ready)
                if judged is None:
                    self._states.pop(name, None)
                    return None
                new = judged
            self._states[name] = new
        finally:
            os.close(fd)
        return None

    def _judge(
        self,
        root_fd: int,
        name: str,
        fd: int,
        state: BatchState,
        now: float,
        ready: list[DropBatch],
    ) -> BatchState | None:
        """Decide on a settled batch: hand it out, hold it with a reason, or
        (None) finish an ingested batch that has since been emptied."""
        snap = state.snapshot
        if snap == state.judged:
            return replace(state, phase=Phase.HELD)  # nothing new since the last verdict
        where = f"{name}/{SIDECAR_NAME}"
        fields: dict[str, Any] = {"batch": name, "files": snap.files, "bytes": snap.bytes}
        if snap.overflow:
            reason = f"{name}: more than {self._max_entries} entries; split it into smaller batches"
        elif not snap.footage():
            if state.ingested and not snap.leftovers() and remove_batch(root_fd, name, fd):
                # Someone cleared what the ingest left behind: finish the batch.
                log.info("drop.batch.finished", **fields)
                return None
            # Before any ingest, an empty batch is most likely one whose card
            # is about to be copied in: wait for files, never remove it.
            why = "no files to ingest" + (
                f" ({len(snap.leftovers())} links or special files)" if snap.leftovers() else ""
            )
            log.info("drop.batch.empty", **fields, reason=why)
            return replace(state, phase=Phase.HELD, judged=snap, reason=why)
        else:
            reason = sidecar_problem(snap, where) or ""
            if not reason:
                try:
                    sidecar, st = read_sidecar(fd, where)
                except DropError as exc:
                    reason = str(exc)
                else:
                    entry = snap.sidecar()
                    if entry is None or (st.st_size, st.st_mtime_ns) != (
                        entry.size,
                        entry.mtime_ns,
                    ):
                        # Rewritten between snapshot and read: settle again.
                        return replace(state, changed_at=now)
                    ready.append(
                        DropBatch(
                            self.root / name,
                            sidecar,
                            snap.files,
                            snap.bytes,
                            self._clock.now(),
                            state.folder,
                        )
                    )
                    return replace(
                        state, phase=Phase.IN_FLIGHT, judged=snap, reason="", ingested=True
                    )
        log.warning("drop.batch.invalid", **fields, reason=reason)
        return replace(state, phase=Phase.HELD, judged=snap, reason=reason)

    # -- after the ingest ------------------------------------------------------------------

    def done(self, batch: DropBatch, success: bool) -> None:
        """The consumer finished with `batch` (`success`: its session ended well).

        Removes the sidecar and empty folders when no other file remains;
        otherwise keeps the batch, to be looked at again only after it
        changes. Raises DropError if `batch` is not in flight.
        """
        with self._lock:
            state = self._states.get(batch.name)
            if state is None or state.phase is not Phase.IN_FLIGHT or state.folder != batch.folder:
                raise DropError(f"{batch.name}: not in flight (done() called twice?)")
            self._after(batch, state, success)

    def _after(self, batch: DropBatch, state: BatchState, success: bool) -> None:
        name = batch.name
        fields: dict[str, Any] = {"batch": name, "serial": batch.sidecar.serial}
        try:
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            # Cannot look: keep it held on the old snapshot; the next pass
            # that can read the folder compares against it.
            log.error("drop.root.unavailable", root=str(self.root), reason=exc.strerror)
            self._states[name] = replace(state, phase=Phase.HELD)
            return
        try:
            try:
                fd = os.open(name, DIR_FLAGS, dir_fd=root_fd)
            except OSError:
                fd = -1
            if fd < 0 or folder_id(fd) != state.folder:
                if fd >= 0:
                    os.close(fd)
                log.info("drop.batch.gone", **fields)
                del self._states[name]
                return
            try:
                after = snapshot_tree(fd, max_entries=self._max_entries)
                if success and not after.overflow and not after.leftovers():
                    if remove_batch(root_fd, name, fd):
                        log.info("drop.batch.finished", **fields, files=batch.files,
                                 bytes=batch.bytes)  # fmt: skip
                        del self._states[name]
                        return
                    after = snapshot_tree(fd, max_entries=self._max_entries)
            finally:
                os.close(fd)
        finally:
            os.close(root_fd)
        now = self._monotonic()
        remaining = [e.display for e in after.leftovers()[:20]]
        fields.update(files=after.files, bytes=after.bytes, remaining=remaining, success=success)
        if changed_outside(state.snapshot, after):
            log.info("drop.batch.kept", **fields, retry="changed while ingesting; once settled")
            self._states[name] = BatchState(
                state.folder, after, now, Phase.SETTLING, judged=state.judged, ingested=True
            )
        else:
            log.warning("drop.batch.kept", **fields, retry="when it changes")
            reason = "ingest failed" if not success else "files left in place"
            self._states[name] = BatchState(
                state.folder, after, now, Phase.HELD, judged=after, reason=reason, ingested=True
            )

    # -- for fronts and tests --------------------------------------------------------------

    def status(self) -> tuple[BatchStatus, ...]:
        with self._lock:
            return tuple(
                BatchStatus(n, s.phase.value, s.snapshot.files, s.snapshot.bytes, s.reason)
                for n, s in sorted(self._states.items())
            )

    def in_flight(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(n for n, s in self._states.items() if s.phase is Phase.IN_FLIGHT))


class _Handler(FileSystemEventHandler):
    def __init__(self, drop: DropFolder) -> None:
        self._drop = drop

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, event.dest_path):
            if path:
                self._drop._event(os.fsdecode(path))


def ingest_batch(
    service: Service,
    drop: DropFolder,
    batch: DropBatch,
    *,
    wipe: bool | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> SessionReport:
    """Ingest `batch` in one session and give it back to `drop`: the consumer's usual job.

    The profile is the sidecar's, else `profiles.default_profile`; `wipe`
    defaults to `ingest.wipe_after_verify` (without a wipe every file stays,
    so the batch is kept). The batch counts as a success when the session
    ran to its end without a failed file; `drop.done` is called in every case.
    Raises DropError if the batch folder was replaced since it was judged.
    """
    config = service.config
    try:
        # The session opens the folder by path; refuse one swapped (for a
        # symlink, say) since it was judged, so the wipe cannot reach
        # anything outside the drop folder.
        try:
            st = os.lstat(batch.path)
        except OSError as exc:
            raise DropError(f"{batch.path}: cannot stat the batch: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != batch.folder:
            raise DropError(f"{batch.path}: replaced since it was judged; not ingested")
        profile = make_profile(batch.sidecar.profile or config.profiles.default_profile,
                               config.profiles)  # fmt: skip
        report = run_session(
            service,
            batch.path,
            batch.sidecar.serial,
            profile,
            wipe=config.ingest.wipe_after_verify if wipe is None else wipe,
            officer=batch.sidecar.officer,
            progress=progress,
            should_stop=should_stop,
        )
    except BaseException:
        drop.done(batch, success=False)
        raise
    drop.done(batch, success=report.state == "done" and not report.failed)
    return report
