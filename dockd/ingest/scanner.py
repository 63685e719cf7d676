"""Walking a camera volume without trusting it (DESIGN invariant 6).

Never follows symlinks, never opens device files, FIFOs or sockets, stays
on the volume's filesystem, bounds the depth, and keeps names as the bytes
on the volume. Every entry it passes over is reported with a reason.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from dockd.devices.profiles import Profile
from dockd.errors import VolumeGoneError
from dockd.ingest.volume import GONE_ERRNOS, FileIdentity, Volume, display_path


@dataclass(frozen=True)
class FoundFile:
    rel_parts: tuple[bytes, ...]
    identity: FileIdentity

    @property
    def rel_path(self) -> bytes:
        return b"/".join(self.rel_parts)

    @property
    def display(self) -> str:
        return display_path(self.rel_parts)


@dataclass(frozen=True)
class Skipped:
    rel_path: bytes
    reason: str

    @property
    def display(self) -> str:
        return self.rel_path.decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class ScanResult:
    files: tuple[FoundFile, ...]
    skipped: tuple[Skipped, ...]


def _kind_reason(mode: int) -> str | None:
    if stat.S_ISLNK(mode):
        return "symbolic link (not followed)"
    if stat.S_ISFIFO(mode):
        return "FIFO (not opened)"
    if stat.S_ISSOCK(mode):
        return "socket (not opened)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file (not opened)"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "unknown file type"
    return None


def scan(volume: Volume, profile: Profile, max_depth: int) -> ScanResult:
    """List the footage on `volume` as `profile` defines it, in name order."""
    files: list[FoundFile] = []
    skipped: list[Skipped] = []

    def walk(dir_fd: int, rel_dir: tuple[bytes, ...]) -> None:
        try:
            names = sorted(os.fsencode(n) for n in os.listdir(dir_fd))
        except OSError as exc:
            if not rel_dir or exc.errno in GONE_ERRNOS:
                raise VolumeGoneError(f"{volume.root}: cannot list: {exc.strerror}") from None
            skipped.append(Skipped(b"/".join(rel_dir), f"unreadable folder: {exc.strerror}"))
            return
        for name in names:
            rel = (*rel_dir, name)
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in GONE_ERRNOS:
                    raise VolumeGoneError(f"{volume.root}: {exc.strerror}") from None
                skipped.append(Skipped(b"/".join(rel), f"cannot stat: {exc.strerror}"))
                continue
            reason = _kind_reason(st.st_mode)
            if reason:
                skipped.append(Skipped(b"/".join(rel), reason))
            elif stat.S_ISDIR(st.st_mode):
                descend(dir_fd, rel, st)
            else:
                why = profile.skip_file(rel)
                if why:
                    skipped.append(Skipped(b"/".join(rel), why))
                else:
                    files.append(FoundFile(rel, FileIdentity.of(st)))

    def descend(parent_fd: int, rel: tuple[bytes, ...], seen: os.stat_result) -> None:
        if seen.st_dev != volume.dev:
            skipped.append(Skipped(b"/".join(rel), "another filesystem mounted here"))
            return
        if len(rel) > max_depth:
            skipped.append(Skipped(b"/".join(rel), f"deeper than {max_depth} folders"))
            return
        why = profile.skip_dir(rel)
        if why:
            skipped.append(Skipped(b"/".join(rel), why))
            return
        try:
            fd = os.open(
                rel[-1],
                os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                dir_fd=parent_fd,
            )
        except OSError as exc:
            skipped.append(Skipped(b"/".join(rel), f"cannot open folder: {exc.strerror}"))
            return
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
                skipped.append(Skipped(b"/".join(rel), "folder was replaced while scanning"))
                return
            walk(fd, rel)
        finally:
            os.close(fd)

    walk(volume.root_fd, ())
    return ScanResult(tuple(files), tuple(skipped))
