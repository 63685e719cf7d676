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
import enum
import errno
import json
import os
import re
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
from dockd.devices.profiles import PROFILES, make_profile
from dockd.errors import DockdError
from dockd.ingest.session import Progress, SessionReport, run_session
from dockd.service import Service

log = structlog.get_logger("dockd.ingest")

SIDECAR_NAME = "dockd-import.json"
SIDECAR_MAX_BYTES = 64 * 1024
MAX_ENTRIES = 100_000
# Deeper than any camera tree; the scanner's own limit (ingest.max_depth) is lower.
MAX_DEPTH = 64

_SIDECAR_B = SIDECAR_NAME.encode()
_SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_OFFICER_MAX = 64
_NOTE_MAX = 2000
_PROFILE_MAX = 64
_KEYS = ("serial", "officer", "profile", "note")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Only events that mean "something was written": open/close-without-write
# come from readers (our own sidecar read, the session's copy) and would
# otherwise keep a batch settling for ever.
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, DirCreatedEvent, FileDeletedEvent, DirDeletedEvent, FileModifiedEvent,
    DirModifiedEvent, FileMovedEvent, DirMovedEvent, FileClosedEvent, FileAttribEvent,
    DirAttribEvent,
]  # fmt: skip


class DropError(DockdError):
    """A drop-folder batch or its sidecar is unusable, or the folder itself is."""


# -- the sidecar ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DropSidecar:
    """What the importer says about a batch (format: this module's docstring)."""

    serial: str
    officer: str | None = None
    profile: str | None = None
    note: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes, where: str = SIDECAR_NAME) -> DropSidecar:
        """Parse sidecar bytes; raise DropError naming `where` and the problem."""
        if len(data) > SIDECAR_MAX_BYTES:
            raise DropError(f"{where}: larger than {SIDECAR_MAX_BYTES} bytes")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DropError(f"{where}: not UTF-8 text (bad byte at offset {exc.start})") from None
        try:
            value = json.loads(text, object_pairs_hook=_unique_keys(where))
        except json.JSONDecodeError as exc:
            raise DropError(
                f"{where}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except (ValueError, RecursionError) as exc:
            # Nesting too deep for the parser, or an integer too long to read.
            raise DropError(f"{where}: not valid JSON: {type(exc).__name__}") from None
        if not isinstance(value, dict):
            raise DropError(f'{where}: expected a JSON object {{"serial": ...}}')
        unknown = sorted(set(value) - set(_KEYS))
        if unknown:
            raise DropError(
                f"{where}: unknown keys {', '.join(map(repr, unknown))} "
                f"(allowed: {', '.join(_KEYS)})"
            )
        if value.get("serial") is None:
            raise DropError(f'{where}: "serial" is missing (the camera\'s device serial)')
        serial = _text(where, "serial", value["serial"], 64)
        if not _SERIAL_RE.fullmatch(serial):
            raise DropError(
                f"{where}: \"serial\" {serial!r} must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        profile = _optional(where, "profile", value.get("profile"), _PROFILE_MAX)
        if profile is not None and profile not in PROFILES:
            known = ", ".join(sorted(PROFILES))
            raise DropError(f'{where}: unknown "profile" {profile!r} (known: {known})')
        return cls(
            serial=serial,
            officer=_optional(where, "officer", value.get("officer"), _OFFICER_MAX),
            profile=profile,
            note=_optional(where, "note", value.get("note"), _NOTE_MAX, multiline=True),
        )


def _unique_keys(where: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    # A repeated key is ambiguous (which "serial" did the importer mean?); JSON
    # parsers disagree on which one wins, so refuse it.
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise DropError(f"{where}: key {key!r} appears twice")
            result[key] = value
        return result

    return hook


def _text(where: str, key: str, value: object, limit: int, *, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise DropError(f'{where}: "{key}" must be a string, got {type(value).__name__}')
    if not value:
        raise DropError(f'{where}: "{key}" is empty')
    if len(value) > limit:
        raise DropError(f'{where}: "{key}" is longer than {limit} characters')
    allowed = "\n\t" if multiline else ""
    if not all(c.isprintable() or c in allowed for c in value):
        raise DropError(f'{where}: "{key}" contains control characters')
    return value


def _optional(
    where: str, key: str, value: object, limit: int, *, multiline: bool = False
) -> str | None:
    return None if value is None else _text(where, key, value, limit, multiline=multiline)


# -- snapshots (pure values) ----------------------------------------------------------------


class Kind(enum.Enum):
    FILE = "f"
    DIR = "d"
    SYMLINK = "l"
    OTHER = "o"  # FIFO, socket, device: never opened
    UNSEEN = "x"  # a folder not looked into: unreadable, too deep, another filesystem


@dataclass(frozen=True)
class Entry:
    """One name in a batch tree, as lstat saw it. `rel` b"" is the batch folder itself."""

    rel: bytes
    kind: Kind
    size: int
    mtime_ns: int

    @property
    def display(self) -> str:
        return self.rel.decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class Snapshot:
    """A batch tree in a fixed order (depth first, names sorted): equal iff unchanged.

    `overflow` means the tree has more than the entry cap and `entries` is a prefix.
    """

    entries: tuple[Entry, ...]
    overflow: bool = False

    def sidecar(self) -> Entry | None:
        return next((e for e in self.entries if e.rel == _SIDECAR_B), None)

    def footage(self) -> tuple[Entry, ...]:
        """Regular files other than the sidecar: what an ingest could take."""
        return tuple(e for e in self.entries if e.kind is Kind.FILE and e.rel != _SIDECAR_B)

    def leftovers(self) -> tuple[Entry, ...]:
        """What keeps the batch from being removed: all but folders and a regular sidecar."""
        return tuple(
            e
            for e in self.entries
            if e.kind is not Kind.DIR and not (e.kind is Kind.FILE and e.rel == _SIDECAR_B)
        )

    @property
    def files(self) -> int:
        return len(self.footage())

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.footage())


def changed_outside(handed: Snapshot, after: Snapshot) -> bool:
    """True if `after` has anything an ingest of `handed` cannot explain.

    An ingest only deletes files (and so changes folder mtimes); a file that
    is new or differs from `handed`, or a new folder, came from someone else,
    and the batch must be looked at again once it settles.
    """
    before = set(handed.entries)
    dirs = {e.rel for e in handed.entries if e.kind is Kind.DIR}
    for entry in after.entries:
        if entry.kind is Kind.DIR:
            if entry.rel not in dirs:
                return True
        elif entry not in before:
            return True
    return after.overflow and not handed.overflow


# -- batch state (pure transitions) ---------------------------------------------------------


class Phase(enum.Enum):
    SETTLING = "settling"
    IN_FLIGHT = "in_flight"
    HELD = "held"  # judged and waiting for a change: invalid, empty, or ingested with leftovers


@dataclass(frozen=True)
class BatchState:
    """What is known of one batch folder. Times are monotonic seconds.

    `folder` is (st_dev, st_ino): a batch deleted and re-created under the
    same name is a new batch. `judged` is the snapshot last handed out or
    refused; the batch is not judged again while it looks exactly like that.
    `ingested` is set once it was handed out: emptied later, it is finished.
    """

    folder: tuple[int, int]
    snapshot: Snapshot
    changed_at: float
    phase: Phase = Phase.SETTLING
    judged: Snapshot | None = None
    reason: str = ""
    ingested: bool = False


def observe(
    state: BatchState | None, folder: tuple[int, int], snapshot: Snapshot, now: float
) -> BatchState:
    """Fold a fresh snapshot into `state`. Requires `now` >= every earlier `now`."""
    if state is None or state.folder != folder:
        return BatchState(folder, snapshot, now)
    if state.phase is Phase.IN_FLIGHT or snapshot == state.snapshot:
        return state
    # Changed: settle again, but remember what was judged, so that a tree
    # that returns to exactly that state is not retried.
    return replace(state, snapshot=snapshot, changed_at=now, phase=Phase.SETTLING, reason="")


def touch(state: BatchState, at: float) -> BatchState:
    """A watchdog event at `at` inside the batch: restart the settle clock.

    Only a settling batch is touched; for a held one, the next snapshot
    decides whether anything changed (events can be spurious or late).
    """
    if state.phase is Phase.SETTLING and at > state.changed_at:
        return replace(state, changed_at=at)
    return state


def due(state: BatchState, now: float, settle: float) -> bool:
    """True when a settling batch has been unchanged for `settle` seconds."""
    return state.phase is Phase.SETTLING and now - state.changed_at >= settle


def next_due(state: BatchState, settle: float) -> float | None:
    return state.changed_at + settle if state.phase is Phase.SETTLING else None


# -- I/O: snapshots and the sidecar ---------------------------------------------------------


def snapshot_tree(
    dir_fd: int, *, max_entries: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH
) -> Snapshot:
    """Snapshot the tree under the open folder `dir_fd` without following any link.

    Folders are entered through O_NOFOLLOW descriptors relative to their
    parent, so a folder swapped for a symlink mid-walk is never followed;
    other filesystems mounted inside are not entered. Stops after
    `max_entries` entries (overflow). Raises OSError only if `dir_fd`
    itself cannot be read.
    """
    top = os.fstat(dir_fd)
    entries = [Entry(b"", Kind.DIR, top.st_size, top.st_mtime_ns)]

    def walk(fd: int, prefix: bytes, depth: int) -> bool:
        """Add the entries under `fd`; False once the cap is reached."""
        with os.scandir(fd) as it:
            names = sorted(os.fsencode(e.name) for e in it)
        for name in names:
            if len(entries) >= max_entries:
                return False
            rel = prefix + name
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted since listed; the folder's mtime shows the change
            except OSError:
                entries.append(Entry(rel, Kind.UNSEEN, 0, 0))
                continue
            if not stat.S_ISDIR(st.st_mode):
                entries.append(Entry(rel, _kind(st.st_mode), st.st_size, st.st_mtime_ns))
                continue
            if st.st_dev != top.st_dev or depth >= max_depth:
                entries.append(Entry(rel, Kind.UNSEEN, st.st_size, st.st_mtime_ns))
                continue
            try:
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                entries.append(Entry(rel, Kind.UNSEEN, st.st_size, st.st_mtime_ns))
                continue
            try:
                entries.append(Entry(rel, Kind.DIR, st.st_size, st.st_mtime_ns))
                if not walk(sub, rel + b"/", depth + 1):
                    return False
            except OSError:
                # Unreadable folder: it can be neither ingested nor removed.
                entries.append(Entry(rel, Kind.UNSEEN, 0, 0))
            finally:
                os.close(sub)
        return True

    complete = walk(dir_fd, b"", 0)
    return Snapshot(tuple(entries), overflow=not complete)


def _kind(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISLNK(mode):
        return Kind.SYMLINK
    return Kind.OTHER


def read_sidecar(batch_fd: int, where: str) -> tuple[DropSidecar, os.stat_result]:
    """Read and parse the sidecar in the open batch folder; DropError if unusable."""
    try:
        fd = os.open(SIDECAR_NAME, _FILE_FLAGS, dir_fd=batch_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DropError(f"{where}: is a symbolic link (not followed)") from None
        raise DropError(f"{where}: cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DropError(f"{where}: not a regular file")
        if st.st_size > SIDECAR_MAX_BYTES:
            raise DropError(f"{where}: larger than {SIDECAR_MAX_BYTES} bytes")
        data = _read_upto(fd, SIDECAR_MAX_BYTES + 1)
    except OSError as exc:
        raise DropError(f"{where}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    return DropSidecar.from_bytes(data, where), st


def _read_upto(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < limit:
        chunk = os.read(fd, limit - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _sidecar_problem(snapshot: Snapshot, where: str) -> str | None:
    """Why the sidecar entry itself is unusable, judged from the snapshot, or None."""
    entry = snapshot.sidecar()
    if entry is None:
        near = [
            e.display
            for e in snapshot.entries
            if e.rel and b"/" not in e.rel and e.rel.lower().startswith(b"dockd")
        ]
        hint = (
            f" (found {', '.join(near)}: the name must be exactly {SIDECAR_NAME})" if near else ""
        )
        return f"{where}: missing: each batch needs a {SIDECAR_NAME} naming the serial{hint}"
    if entry.kind is Kind.SYMLINK:
        return f"{where}: is a symbolic link (not followed)"
    if entry.kind is not Kind.FILE:
        return f"{where}: not a regular file"
    if entry.size > SIDECAR_MAX_BYTES:
        return f"{where}: larger than {SIDECAR_MAX_BYTES} bytes"
    return None


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
            fd = os.open(name, _DIR_FLAGS, dir_fd=root_fd)
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
            if state.ingested and not snap.leftovers() and _remove_batch(root_fd, name, fd):
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
            reason = _sidecar_problem(snap, where) or ""
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
                fd = os.open(name, _DIR_FLAGS, dir_fd=root_fd)
            except OSError:
                fd = -1
            if fd < 0 or _folder_id(fd) != state.folder:
                if fd >= 0:
                    os.close(fd)
                log.info("drop.batch.gone", **fields)
                del self._states[name]
                return
            try:
                after = snapshot_tree(fd, max_entries=self._max_entries)
                if success and not after.overflow and not after.leftovers():
                    if _remove_batch(root_fd, name, fd):
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


def _folder_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def _remove_batch(root_fd: int, name: str, batch_fd: int) -> bool:
    """Remove a batch holding only its sidecar and empty folders; False if anything stays.

    Only rmdir and the sidecar's unlink are used: a file that arrives
    meanwhile makes an rmdir fail and survives. If the batch folder cannot
    be removed after the sidecar went, the sidecar is put back.
    """
    raw: bytes | None = None
    try:
        for sub in sorted(os.listdir(batch_fd)):
            if sub != SIDECAR_NAME and not _rmdir_tree(batch_fd, sub):
                return False
        with contextlib.suppress(FileNotFoundError):  # the importer may have removed it
            raw = _read_raw_sidecar(batch_fd)
            os.unlink(SIDECAR_NAME, dir_fd=batch_fd)
    except OSError:
        return False
    try:
        os.rmdir(name, dir_fd=root_fd)
    except OSError:
        if raw is not None:
            _restore_sidecar(batch_fd, name, raw)
        return False
    return True


def _rmdir_tree(parent_fd: int, name: str) -> bool:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError:
        return False  # a file, a symlink, or gone: not ours to remove
    try:
        for sub in os.listdir(fd):
            if not _rmdir_tree(fd, sub):
                return False
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError:
        return False
    return True


def _read_raw_sidecar(batch_fd: int) -> bytes:
    fd = os.open(SIDECAR_NAME, _FILE_FLAGS, dir_fd=batch_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "the sidecar is not a regular file")
        return _read_upto(fd, SIDECAR_MAX_BYTES + 1)
    finally:
        os.close(fd)


def _restore_sidecar(batch_fd: int, name: str, raw: bytes) -> None:
    try:
        fd = os.open(
            SIDECAR_NAME,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o644,
            dir_fd=batch_fd,
        )
        try:
            os.write(fd, raw)
        finally:
            os.close(fd)
    except OSError as exc:
        log.error(
            "drop.batch.sidecar_lost",
            batch=name,
            reason=f"files arrived while finishing and the sidecar could not be restored: "
            f"{exc.strerror}; write {SIDECAR_NAME} again",
        )


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
