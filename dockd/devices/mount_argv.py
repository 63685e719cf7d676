"""Mount command lines and /proc/self/mountinfo, pure: strings in, argv lists out.

dockd/devices/mount.py runs them; this half has no I/O, so that every option
a camera mount gets can be read and tested as text (see mount.py's docstring
for why each flag is there).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dockd.errors import DockdError

FS_TYPES = ("vfat", "exfat")
BACKENDS = ("kernel", "fuse")
# Per-mount flags every camera mount carries, in both back ends.
VFS_FLAGS = "nosuid,nodev,noexec"
FUSE_TOOLS = {"vfat": "fusefat", "exfat": "mount.exfat-fuse"}


class MountError(DockdError):
    """A camera volume could not be mounted, switched or unmounted."""


# -- /proc/self/mountinfo -------------------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo (see proc(5))."""

    mount_point: str
    vfs_options: frozenset[str]  # per-mount flags: ro|rw, nosuid, nodev, noexec, …
    fs_type: str  # vfat, exfat, fuse.fusefat, fuseblk, …
    source: str
    super_options: frozenset[str]  # the filesystem's own: ro|rw, uid=, …

    @property
    def is_fuse(self) -> bool:
        # "fuse.<subtype>" (fusefat), "fuseblk" (exfat-fuse, on a block device), plain "fuse".
        return self.fs_type.split(".")[0] in ("fuse", "fuseblk")


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse /proc/<pid>/mountinfo text; lines it cannot read are skipped."""
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        tail = right.split(" ")
        if not sep or len(fields) < 6 or len(tail) < 3:
            continue
        entries.append(
            MountEntry(
                mount_point=_unescape(fields[4]),
                vfs_options=frozenset(fields[5].split(",")),
                fs_type=tail[0],
                source=_unescape(tail[1]),
                super_options=frozenset(tail[2].split(",")),
            )
        )
    return entries


# -- command lines (pure) ---------------------------------------------------------------


def _check_mode(mode: str) -> None:
    if mode not in ("ro", "rw"):
        raise MountError(f"mount mode must be ro or rw, not {mode!r}")


def kernel_mount_options(fs_type: str, mode: str, time_offset: int | None = None) -> str:
    """The -o options of a kernel mount of a camera volume.

    Files root's own and private (uid/gid 0, fmask 0177, dmask 0077); names
    decoded as UTF-8 (vfat: `utf8`, which keeps the driver's case folding, as
    the kernel documentation advises over iocharset=utf8; exfat: iocharset);
    vfat shows 8.3 names as written (`shortname=mixed`); an error in the
    filesystem makes it read-only instead of writing on (`errors=remount-ro`);
    `noatime` so that reading never writes access dates during the wipe.
    """
    _check_mode(mode)
    common = f"{mode},{VFS_FLAGS},noatime,uid=0,gid=0,fmask=0177,dmask=0077"
    if time_offset is not None:
        # FAT stores the camera's local wall time; the kernel subtracts this
        # many minutes to get UTC (exfat: only where a stamp has no zone).
        common += f",time_offset={time_offset}"
    if fs_type == "vfat":
        return f"{common},utf8,shortname=mixed,errors=remount-ro"
    if fs_type == "exfat":
        return f"{common},iocharset=utf8,errors=remount-ro"
    raise MountError(_unsupported(fs_type))


def kernel_mount_argv(
    fs_type: str, devnode: str, target: Path, mode: str = "ro", time_offset: int | None = None
) -> list[str]:
    return [
        "mount",
        "-i",
        "-t",
        fs_type,
        "-o",
        kernel_mount_options(fs_type, mode, time_offset),
        _checked_devnode_path(devnode),
        str(target),
    ]


def kernel_remount_argv(target: Path, mode: str) -> list[str]:
    """Switch a kernel mount between ro and rw, restating the flags that must stay."""
    _check_mode(mode)
    return ["mount", "-i", "-o", f"remount,{mode},{VFS_FLAGS}", str(target)]


def fuse_mount_argv(fs_type: str, devnode: str, target: Path, mode: str = "ro") -> list[str]:
    """The foreground FUSE daemon that mounts `devnode` at `target`.

    fusefat: -f foreground, -s single-threaded (its read-write support is
    marked experimental; one request at a time is the cautious way), `rw+`
    is its read-write switch. mount.exfat-fuse: -d is its only way to stay in
    the foreground (it also turns on libfuse's debug output, which we drain
    and drop); it is read-only with `ro`, and -o goes to its own option
    parser (umask values; it ignores nosuid/nodev/noexec, see module doc).
    """
    _check_mode(mode)
    dev = _checked_devnode_path(devnode)
    if fs_type == "vfat":
        opts = f"{'ro' if mode == 'ro' else 'rw+'},{VFS_FLAGS}"
        return ["fusefat", "-f", "-s", "-o", opts, dev, str(target)]
    if fs_type == "exfat":
        opts = "dmask=0077,fmask=0177" + (",ro" if mode == "ro" else ",noatime")
        return ["mount.exfat-fuse", "-d", "-o", opts, dev, str(target)]
    raise MountError(_unsupported(fs_type))


def bind_remount_argv(target: Path, mode: str) -> list[str]:
    """Set the per-mount flags of whatever is mounted at `target` (any filesystem)."""
    _check_mode(mode)
    return ["mount", "-o", f"remount,bind,{mode},{VFS_FLAGS}", str(target)]


def _unsupported(fs_type: str) -> str:
    return (
        f"cannot mount a {fs_type or 'unknown'} filesystem: dockd mounts only "
        f"{' and '.join(FS_TYPES)}; copy this camera's footage with the vendor's tool "
        "into the drop folder instead"
    )


def _checked_devnode_path(devnode: str) -> str:
    # An absolute path can never be taken for an option by mount or a FUSE tool.
    if not devnode.startswith("/"):
        raise MountError(f"device node {devnode!r} is not an absolute path")
    return devnode
