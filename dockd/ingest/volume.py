"""Safe access to a mounted camera volume.

Every access goes through directory file descriptors opened with
O_NOFOLLOW from the volume's root, so no name on the volume (a symlink, a
directory swapped for a symlink mid-scan, `..`-looking names) can lead
outside it. Files are opened O_NONBLOCK and checked to be regular files
after opening, so a FIFO or device node planted between scan and copy is
refused rather than blocking or being read.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dockd.chunks import hash_fd
from dockd.errors import SourceError, VolumeGoneError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Errors that mean the medium itself is gone, not just one file.
GONE_ERRNOS = frozenset({errno.ENODEV, errno.ENXIO, errno.ENOTCONN, errno.ESHUTDOWN, errno.EIO})


def display_path(rel_parts: tuple[bytes, ...]) -> str:
    """A printable form of a relative path; undecodable bytes as \\xNN escapes."""
    return b"/".join(rel_parts).decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class FileIdentity:
    """What we saw of a file; if any of it differs later, the file changed."""

    size: int
    mtime_ns: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns, ino=st.st_ino)


class Volume:
    """A camera volume (or a directory standing in for one), opened by its root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            # O_NOFOLLOW: a root swapped for a symlink must not lead the wipe elsewhere.
            self.root_fd = os.open(
                root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            )
        except OSError as exc:
            raise SourceError(f"{root}: cannot open the volume: {exc.strerror}") from None
        self.dev = os.fstat(self.root_fd).st_dev

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_alive(self) -> None:
        """Raise VolumeGoneError if the volume's root can no longer be read."""
        try:
            os.fstat(self.root_fd)
            os.listdir(self.root_fd)
        except OSError as exc:
            raise VolumeGoneError(f"{self.root}: the volume is gone ({exc.strerror})") from None

    @contextmanager
    def directory(self, rel_dir: tuple[bytes, ...]) -> Iterator[int]:
        """Yield an fd for the directory at `rel_dir`, reached without following links."""
        fds: list[int] = []
        try:
            current = self.root_fd
            for part in rel_dir:
                current = os.open(part, _DIR_FLAGS, dir_fd=current)
                fds.append(current)
            yield current
        finally:
            for fd in reversed(fds):
                os.close(fd)

    @contextmanager
    def open_file(self, rel_parts: tuple[bytes, ...]) -> Iterator[int]:
        """Yield a read fd for the regular file at `rel_parts`.

        Raises SourceError if it is missing, not a regular file, or unreadable.
        """
        where = display_path(rel_parts)
        try:
            with self.directory(rel_parts[:-1]) as dir_fd:
                fd = os.open(rel_parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise _source_error(where, "cannot open", exc) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SourceError(f"{where}: is no longer a regular file")
            yield fd
        finally:
            try:
                os.close(fd)
            except OSError as exc:
                # A camera unplugged after its last byte was read fails here.
                raise _source_error(where, "cannot close", exc) from None

    def lstat(self, rel_parts: tuple[bytes, ...]) -> os.stat_result:
        where = display_path(rel_parts)
        try:
            with self.directory(rel_parts[:-1]) as dir_fd:
                return os.stat(rel_parts[-1], dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            raise _source_error(where, "cannot stat", exc) from None

    def unlink_if_unchanged(
        self, rel_parts: tuple[bytes, ...], seen: FileIdentity, sha256: str, buffer_size: int
    ) -> None:
        """Delete the file only if it is still what was copied (hash `sha256`).

        Size and mtime must match. FAT drivers and FUSE renumber an inode
        once nothing holds the file, so a new inode number alone does not
        prove a change, but FAT times have 2-second steps: when the inode
        differs, the file is re-hashed and deleted only if it matches.
        Raises SourceError (and deletes nothing) if it changed or vanished.
        """
        where = display_path(rel_parts)
        changed = SourceError(f"{where}: changed since it was copied; not deleted")
        try:
            with self.directory(rel_parts[:-1]) as dir_fd:
                st = os.stat(rel_parts[-1], dir_fd=dir_fd, follow_symlinks=False)
                now = FileIdentity.of(st)
                if not stat.S_ISREG(st.st_mode) or (now.size, now.mtime_ns) != (
                    seen.size,
                    seen.mtime_ns,
                ):
                    raise changed
                if now.ino != seen.ino and _hash_at(dir_fd, rel_parts[-1], buffer_size) != (
                    sha256,
                    now,
                ):
                    raise changed
                os.unlink(rel_parts[-1], dir_fd=dir_fd)
                _fsync_dir(dir_fd)
        except OSError as exc:
            raise _source_error(where, "cannot delete", exc) from None


def _hash_at(dir_fd: int, name: bytes, buffer_size: int) -> tuple[str, FileIdentity]:
    """SHA-256 of the regular file `name` in `dir_fd`, and its identity after reading."""
    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "", FileIdentity(-1, -1, -1)
        sha256, _ = hash_fd(fd, buffer_size)
        after = FileIdentity.of(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    finally:
        os.close(fd)
    return sha256, after


def _fsync_dir(dir_fd: int) -> None:
    try:
        os.fsync(dir_fd)
    except OSError as exc:
        # FUSE and some vfat drivers do not implement fsync on directories.
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EROFS, errno.ENOTSUP):
            raise


def _source_error(where: str, action: str, exc: OSError) -> SourceError:
    message = f"{where}: {action}: {exc.strerror or exc}"
    if exc.errno in GONE_ERRNOS:
        return VolumeGoneError(message)
    return SourceError(message)
