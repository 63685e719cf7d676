"""The write-once, content-addressed evidence store (DESIGN §4a).

Layout under the state directory:

    store/sha256/ab/<64 hex>   evidence objects, mode 0444, named by SHA-256
    store/tmp/<random>.part    copies in progress; emptied at start-up
    store/partial/<key>.part   large copies in progress, resumable (ingest/resume.py),
    store/partial/<key>.json     with their last checkpoint; kept across restarts

An object is only ever created by renaming a temporary file that has been
fsynced and read back from disk with a matching hash; it is never opened
for writing again. Only `service/` calls the mutating methods.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from dockd.chunks import hash_fd
from dockd.errors import StoreError, StoreFullError

OBJECT_MODE = 0o444
_HEX = frozenset("0123456789abcdef")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX


def hash_file(
    path: Path, buffer_size: int = 1 << 20, progress: Callable[[int], None] | None = None
) -> tuple[str, int]:
    """SHA-256 and size of a file, read from disk (cached pages dropped first).

    `progress` is called with the length of each chunk hashed.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return hash_fd(fd, buffer_size, progress)
    finally:
        os.close(fd)


class Store:
    def __init__(self, root: Path, min_free_bytes: int = 0) -> None:
        self.root = root
        self.objects = root / "sha256"
        self.tmp = root / "tmp"
        self.partial = root / "partial"
        self.min_free_bytes = min_free_bytes
        for path in (root, self.objects, self.tmp, self.partial):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- reading -----------------------------------------------------------

    @staticmethod
    def relative_path(sha256: str) -> str:
        """The object's path relative to the store root, as the catalog records it."""
        return f"sha256/{sha256[:2]}/{sha256}"

    def object_path(self, sha256: str) -> Path:
        if not is_sha256_hex(sha256):
            raise StoreError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / self.relative_path(sha256)

    def has(self, sha256: str) -> bool:
        return self.object_path(sha256).is_file()

    def iter_objects(self) -> Iterator[tuple[str, Path]]:
        """Every file under sha256/, as (name, path); names may be anything."""
        for prefix in sorted(self.objects.iterdir()):
            if prefix.is_dir() and not prefix.is_symlink():
                for path in sorted(prefix.iterdir()):
                    yield path.name, path
            else:
                yield prefix.name, prefix

    def iter_temp(self) -> list[Path]:
        return sorted(self.tmp.iterdir())

    def partial_paths(self, key: str) -> tuple[Path, Path]:
        """A resumable copy's file and its checkpoint note."""
        if not is_sha256_hex(key):
            raise StoreError(f"not a partial copy's key: {key!r}")
        return self.partial / f"{key}.part", self.partial / f"{key}.json"

    # -- writing (service/ only) --------------------------------------------

    def recover(self, now: float, keep_partial_s: float) -> list[Path]:
        """Remove copies left by a crash that cannot be resumed; return what was removed.

        Everything in tmp/ goes. A partial copy stays while it has a checkpoint
        note younger than `keep_partial_s` (its camera may come back); a note
        without its copy, a copy without a note (crashed before its first
        checkpoint) and an older pair go.
        """
        removed = self.iter_temp()
        for path in removed:
            path.unlink()
        if removed:
            fsync_dir(self.tmp)
        kept: set[Path] = set()
        for part in self.partial.glob("*.part"):
            note = part.with_suffix(".json")
            with contextlib.suppress(FileNotFoundError):
                if now - note.stat().st_mtime < keep_partial_s:
                    kept |= {part, note}
        stale = sorted(p for p in self.partial.iterdir() if p not in kept)
        for path in stale:
            path.unlink(missing_ok=True)
        if stale:
            fsync_dir(self.partial)
        return removed + stale

    def free_bytes(self) -> int:
        st = os.statvfs(self.tmp)
        return int(st.f_bavail * st.f_frsize)

    def check_space(self, size: int) -> None:
        """Refuse a file that cannot fit with the configured reserve left over."""
        st = os.statvfs(self.tmp)
        free = st.f_bavail * st.f_frsize
        if free < size + self.min_free_bytes:
            raise StoreFullError(
                f"store has {free} bytes free; a {size}-byte file needs "
                f"{size + self.min_free_bytes} with the reserve"
            )

    def new_temp(self) -> tuple[int, Path]:
        path = self.tmp / f"{secrets.token_hex(16)}.part"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        return fd, path

    def commit_temp(self, temp: Path, sha256: str, buffer_size: int = 1 << 20) -> Path:
        """Move a verified temporary copy into place, or drop it if already stored.

        Requires: `temp` was fsynced and read back with hash `sha256`.
        If the object exists, it is re-hashed first: a damaged object is
        reported, never silently trusted or overwritten.
        """
        target = self.object_path(sha256)
        if target.exists():
            actual, _ = hash_file(target, buffer_size)
            if actual != sha256:
                self.discard_temp(temp)
                raise StoreError(
                    f"store object {self.relative_path(sha256)} is damaged "
                    f"(hashes to {actual}); run `dockd verify`"
                )
            temp.unlink()
            self._forget_checkpoint(temp)
            return target
        prefix = target.parent
        new_prefix = not prefix.exists()
        prefix.mkdir(mode=0o700, exist_ok=True)
        os.chmod(temp, OBJECT_MODE)
        os.rename(temp, target)
        # The object's new name must be durable before the catalog names it (FORMAT.md,
        # order of writes, 1). Its old name in tmp/ need not: a rename is atomic, and a
        # name left in tmp/ by a crash would be a second link that recovery unlinks.
        fsync_dir(prefix)
        if new_prefix:
            fsync_dir(self.objects)
        self._forget_checkpoint(temp)
        return target

    def remove_objects(self, shas: list[str]) -> list[str]:
        """Unlink objects whose tombstones are committed (the retention sweep only).

        Each directory touched is fsynced once, after its unlinks; objects
        already gone are skipped (a sweep resumed after a crash). Returns
        the names actually removed.
        """
        removed: list[str] = []
        dirs: set[Path] = set()
        for sha in shas:
            path = self.object_path(sha)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise raise_store_error(f"removing {self.relative_path(sha)}", exc) from None
            removed.append(sha)
            dirs.add(path.parent)
        for folder in sorted(dirs):
            fsync_dir(folder)
        return removed

    @property
    def _sweep_marker(self) -> Path:
        return self.root / "sweep-in-progress"

    def mark_sweep(self, running: bool) -> None:
        """A durable marker: set before a sweep's first deletion, cleared after its last unlink."""
        if running:
            fd = os.open(self._sweep_marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            self._sweep_marker.unlink(missing_ok=True)
        fsync_dir(self.root)

    def sweep_marked(self) -> bool:
        return self._sweep_marker.exists()

    def discard_temp(self, temp: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        self._forget_checkpoint(temp)

    def _forget_checkpoint(self, temp: Path) -> None:
        """A partial copy committed or discarded: its checkpoint note means nothing now."""
        if temp.parent == self.partial:
            temp.with_suffix(".json").unlink(missing_ok=True)


def is_read_only(path: Path) -> bool:
    return not (os.lstat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def raise_store_error(action: str, exc: OSError) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StoreFullError(f"store is full while {action}: {exc.strerror}")
    return StoreError(f"store I/O error while {action}: {exc.strerror}")
