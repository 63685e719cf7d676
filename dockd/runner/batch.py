"""A drop batch as values: its sidecar, its tree snapshots, its settling state.

The contract with the people who copy cards (layout, sidecar format, life of
a batch) is in dropfolder.py's docstring; this module is its pure part (the
sidecar parser, snapshots and state transitions) plus the few reads of a
batch's tree through directory file descriptors. The watcher that drives
them is dropfolder.py.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from dockd.devices.profiles import PROFILES
from dockd.errors import DockdError

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
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


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
                sub = os.open(name, DIR_FLAGS, dir_fd=fd)
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
        fd = os.open(SIDECAR_NAME, FILE_FLAGS, dir_fd=batch_fd)
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
        data = read_upto(fd, SIDECAR_MAX_BYTES + 1)
    except OSError as exc:
        raise DropError(f"{where}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    return DropSidecar.from_bytes(data, where), st


def read_upto(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < limit:
        chunk = os.read(fd, limit - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def sidecar_problem(snapshot: Snapshot, where: str) -> str | None:
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


# -- removing a finished batch (rmdir only, and the sidecar) -------------------------------


def folder_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def remove_batch(root_fd: int, name: str, batch_fd: int) -> bool:
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
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
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
    fd = os.open(SIDECAR_NAME, FILE_FLAGS, dir_fd=batch_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "the sidecar is not a regular file")
        return read_upto(fd, SIDECAR_MAX_BYTES + 1)
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
