"""Mounting camera volumes: read-only, and writable only for the wipe.

A camera's storage is hostile media (DESIGN invariant 6): its filesystem may
be corrupt or crafted, its firmware may lie, it may vanish at any moment. So
a volume is mounted

- read-only, so that nothing dockd does while scanning and copying can
  change the camera's originals (R3); `MountedVolume.writable()` lifts that
  only for the wipe after verified copies, and puts it back afterwards;
- nosuid, nodev, noexec, so that no file on it is a set-uid program, a device
  node or anything else that can be run;
- owned by root with private modes (kernel back end: fmask/dmask; both back
  ends: the mount points live in a 0700 folder of dockd's runtime dir),
- at a fixed place per dock slot, `<runtime_dir>/mounts/<slot>`, so that a
  crash leaves at most one stale mount per slot, which the next `mount` of
  that slot unmounts first.

Two back ends:

- "kernel": `mount -i -t vfat|exfat -o ro,nosuid,nodev,noexec,…`; the wipe
  remounts rw and then ro again. `-i` keeps mount(8) from handing the job to
  a /sbin/mount.<type> helper (some distributions install exfat-fuse's).
- "fuse": for hosts whose kernel has no vfat (this one, and test hosts).
  fusefat (vfat) and mount.exfat-fuse (exfat) run in the foreground as our
  children, so that we know when they have written their last block and
  exited. FUSE mounts made by root are nosuid,nodev by default; fusefat
  also takes nosuid,nodev,noexec as -o options, exfat-fuse passes -o
  options only to its own parser, which ignores them. So after either tool
  has mounted, a bind remount (`mount -o remount,bind,ro,nosuid,nodev,
  noexec`) sets the per-mount flags that both need, in the kernel's VFS,
  whatever the tool did. The wipe unmounts and mounts again read-write (the
  drivers open the medium read-only otherwise), then goes back the same way.

Every subprocess has a timeout (a hung USB device blocks its users), none
goes through a shell, and every failure raises MountError with what to do;
a failed mount leaves neither a mount nor a mount point behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from dockd.devices.identity import DeviceIdentity, slot_dirname
from dockd.errors import DockdError

log = structlog.get_logger("dockd.devices")

FS_TYPES = ("vfat", "exfat")
BACKENDS = ("kernel", "fuse")
# Per-mount flags every camera mount carries, in both back ends.
VFS_FLAGS = "nosuid,nodev,noexec"
FUSE_TOOLS = {"vfat": "fusefat", "exfat": "mount.exfat-fuse"}
MOUNTINFO = Path("/proc/self/mountinfo")

# How often a busy unmount is tried before falling back to a lazy one.
_UNMOUNT_TRIES = 3
# libfuse's -d (debug) chatter, which exfat-fuse cannot run in the foreground
# without: request traces ("unique: 4, opcode: …", "getattr /x", "read[0] …").
# Kept out of error messages; the tools' own errors look different
# ("ERROR: failed to open …", "open() (RDONLY) error: …").
_FUSE_DEBUG = re.compile(
    r"^(unique: \d|INIT: |flags=0x|max_\w+=|congestion_threshold=|time_gran=|nullpath_ok:|"
    r"nopath:|utime_omit_ok:|FUSE library version|NODEID: |"
    # fusefat's own chatter: its banner and a line per cluster read.
    r"Cluster|fat type:|Fsioff:|--- \w+ ---|dataclusters|first data byte|\S+ fat off|"
    r"fat_eoc_value|"
    r"(getattr|readdir|read|write|open|opendir|release|releasedir|lookup|unlink|rmdir|mkdir|"
    r"statfs|flush|fsync|fsyncdir|create|rename|truncate|ftruncate|utimens|chmod|chown|"
    r"access|destroy|forget|LOOKUP|FORGET)(\[\d+\])?( |$))"
)


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


def mounts_at(target: Path) -> list[MountEntry]:
    """What is mounted at `target` (an absolute path), bottom first."""
    where = os.path.normpath(target)
    return [e for e in parse_mountinfo(MOUNTINFO.read_text()) if e.mount_point == where]


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


# -- host checks --------------------------------------------------------------------------


def _kernel_filesystems() -> set[str]:
    try:
        text = Path("/proc/filesystems").read_text()
    except OSError:
        return set()
    return {line.split()[-1] for line in text.splitlines() if line.split()}


def backend_available(backend: str, filesystems: Iterable[str] = FS_TYPES) -> list[str]:
    """What keeps `backend` from mounting `filesystems` on this host ([] if nothing).

    For `dockd doctor`: each problem is one sentence that says what to install
    or change.
    """
    problems: list[str] = []
    wanted = [fs for fs in filesystems if fs in FS_TYPES]
    if backend == "kernel":
        for tool in ("mount", "umount"):
            if shutil.which(tool) is None:
                problems.append(f"{tool} not found: install util-linux (mount)")
        known = _kernel_filesystems()
        modprobe = shutil.which("modprobe")
        for fs in wanted:
            if fs in known:
                continue
            if modprobe is None:
                problems.append(
                    f"the kernel has no {fs} filesystem loaded and modprobe is missing: "
                    'install kmod, or set daemon.mount_backend = "fuse"'
                )
                continue
            try:
                probe = subprocess.run(
                    [modprobe, "-n", "-q", fs], capture_output=True, timeout=10, check=False
                )
            except (OSError, subprocess.TimeoutExpired):
                probe = None
            if probe is None or probe.returncode != 0:
                problems.append(
                    f"the kernel has no {fs} filesystem (not in /proc/filesystems, no module): "
                    'install the kernel\'s modules, or set daemon.mount_backend = "fuse"'
                )
    elif backend == "fuse":
        if not os.path.exists("/dev/fuse"):
            problems.append("/dev/fuse is missing: load the fuse module (modprobe fuse)")
        for tool, package in (("mount", "mount"), ("umount", "mount")):
            if shutil.which(tool) is None:
                problems.append(f"{tool} not found: install {package}")
        if _fusermount() is None:
            problems.append("fusermount not found: install fuse3")
        packages = {"vfat": "fusefat", "exfat": "exfat-fuse"}
        for fs in wanted:
            if shutil.which(FUSE_TOOLS[fs]) is None:
                problems.append(f"{FUSE_TOOLS[fs]} not found: install {packages[fs]}")
    else:
        problems.append(f"unknown mount back end {backend!r} (known: {', '.join(BACKENDS)})")
    return problems


def _fusermount() -> str | None:
    return shutil.which("fusermount3") or shutil.which("fusermount")


# -- processes ------------------------------------------------------------------------------


def _run(argv: list[str], timeout: float, what: str) -> tuple[int, str]:
    """Run a tool; (exit status, stderr). MountError if it is missing or hangs.

    Not subprocess.run(timeout=…): after a timeout it waits without limit for
    the killed child, and a mount stuck on a dead USB device cannot die.
    """
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
    except OSError as exc:
        raise MountError(
            f"{what}: cannot run {argv[0]} ({exc.strerror}); `dockd doctor` lists what is missing"
        ) from None
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        # A process stuck in the kernel cannot even die: leave it, do not hang too.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=2)
        raise MountError(
            f"{what}: {argv[0]} did not finish within {timeout:g} s (a hung USB device?); "
            "unplug the camera and dock it again"
        ) from None
    return proc.returncode, _one_line(err.decode("utf-8", errors="replace"))


def _one_line(text: str) -> str:
    """Tool output as one clause of an error message (which must stay one log line)."""
    lines = (line.strip().rstrip(".") for line in text.splitlines())
    return "; ".join(line for line in lines if line)


def _exit_text(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:  # pragma: no cover - unknown signal number
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class _FuseDaemon:
    """A FUSE tool running in the foreground, with the tail of its stderr.

    Its own session, so that a Ctrl-C meant for dockd does not unmount the
    camera under a running copy. stderr is read continuously by a thread:
    a full pipe would stall the file system.
    """

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        try:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # both tools print a banner there
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise MountError(
                f"cannot run {argv[0]} ({exc.strerror}); `dockd doctor` lists what is missing"
            ) from None
        self._tail = bytearray()
        self._reader = threading.Thread(target=self._read, name="dockd-fuse-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        # Big reads, no per-line work: fusefat writes a debug line for every
        # cluster it reads (~260,000 per GiB at 4 KiB clusters).
        stream = self.process.stderr
        assert stream is not None
        with stream:
            fd = stream.fileno()
            while chunk := os.read(fd, 1 << 16):
                self._tail += chunk
                del self._tail[: -(1 << 16)]

    def _said(self) -> list[str]:
        lines = bytes(self._tail).decode("utf-8", errors="replace").splitlines()
        kept = [line.strip() for line in lines if line.strip()]
        return [line for line in kept if not _FUSE_DEBUG.match(line)][-20:]

    def message(self) -> str:
        """How it ended and what it said, for a MountError."""
        self._reader.join(1.0)
        said = _one_line("\n".join(self._said()))[-600:]
        code = self.process.poll()
        status = f"{self.argv[0]} {_exit_text(code)}" if code is not None else self.argv[0]
        return f"{status}: {said}" if said else status

    def wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.wait(5.0)


# -- mounting -------------------------------------------------------------------------------


class MountedVolume:
    """A camera volume mounted by a Mounter. Read-only except inside writable()."""

    def __init__(
        self,
        mounter: Mounter,
        identity: DeviceIdentity,
        path: Path,
        daemon: _FuseDaemon | None,
    ) -> None:
        self.mounter = mounter
        self.identity = identity
        self.path = path
        self.mode = "ro"
        self._daemon = daemon
        self._mounted = True
        self._lock = threading.RLock()

    @property
    def mounted(self) -> bool:
        return self._mounted

    def __enter__(self) -> MountedVolume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unmount()

    def _fields(self) -> dict[str, str]:
        return {
            "slot": self.identity.slot,
            "devnode": self.identity.devnode,
            "mode": self.mode,
            "backend": self.mounter.backend,
            "path": str(self.path),
        }

    @contextmanager
    def writable(self) -> Iterator[Path]:
        """Yield the mount path while the volume is mounted read-write.

        For the wipe only: on leaving, the volume is read-only again. If that
        fails (the camera was unplugged meanwhile), it is unmounted instead,
        so it is never left writable, and MountError is raised unless the
        body itself raised.

        With the FUSE back end the volume is unmounted and mounted again, on
        entry and on exit: every file and folder opened on it before must be
        closed first (else MountError: busy), and whatever is opened inside
        must be closed before leaving. Not re-entrant.
        """
        with self._lock:
            if not self._mounted:
                raise MountError(f"{self.path}: the volume is not mounted")
            if self.mode == "rw":
                raise MountError(f"{self.path}: already writable (writable() does not nest)")
            if is_write_protected(self.identity.devnode):
                # fusefat would mount "rw" anyway and fail each deletion with
                # EPERM; the kernel and exfat-fuse fall back to read-only.
                raise MountError(
                    f"{self.identity.devnode} (slot {self.identity.slot}) is write-protected: "
                    "nothing can be deleted from it; the camera keeps its copy"
                )
            try:
                self._switch("rw")
            except MountError:
                self._back_to_ro(raise_errors=False)
                raise
        try:
            yield self.path
        except BaseException:
            self._back_to_ro(raise_errors=False)
            raise
        self._back_to_ro(raise_errors=True)

    def _back_to_ro(self, raise_errors: bool) -> None:
        with self._lock:
            if not self._mounted or self.mode == "ro":
                return
            try:
                self._switch("ro")
            except MountError as exc:
                log.error("mount.remount_failed", error=str(exc), **self._fields())
                try:
                    self.unmount()
                except MountError as unmount_exc:
                    log.error("mount.unmount_failed", error=str(unmount_exc), **self._fields())
                if raise_errors:
                    raise

    def _switch(self, mode: str) -> None:
        m = self.mounter
        identity = self.identity
        what = f"cannot make {identity.devnode} (slot {identity.slot}) {_MODE_WORD[mode]}"
        if m.backend == "kernel":
            code, err = _run(kernel_remount_argv(self.path, mode), m.timeout, what)
            if code != 0:
                raise MountError(f"{what}: mount {_exit_text(code)}: {err}")
        else:
            # The FUSE drivers open the medium read-only or read-write for
            # good: switching means a new daemon. No lazy unmount here: a
            # detached old daemon would still hold the device.
            m._unmount_target(self.path, identity, lazy=False, daemon=self._daemon)
            self._daemon = None
            try:
                self._daemon = m._fuse_mount(identity, self.path, mode)
            except MountError:
                self._mounted = False
                m._release(self.path, remove_dir=True)
                raise
        self.mode = mode
        entry = _top(self.path)
        if entry is None or mode not in entry.super_options or mode not in entry.vfs_options:
            shown = ",".join(sorted(entry.super_options)) if entry else "nothing mounted"
            # The state is unknown: assume the worse one, so that leaving
            # writable() forces read-only (or unmounts).
            self.mode = "rw"
            raise MountError(
                f"{what}: the filesystem came up as {shown}"
                + (
                    "; the camera's storage is write-protected (or the driver fell back "
                    "to read-only after an error), so nothing can be deleted from it"
                    if mode == "rw"
                    else ""
                )
            )
        log.info("mount.remounted", **self._fields())

    def unmount(self) -> None:
        """Unmount and remove the mount point; does nothing if already unmounted.

        A busy volume is tried again a few times, then detached lazily (it
        disappears from the file tree at once and is really unmounted when
        the last file on it is closed), logged as mount.unmount_lazy.
        """
        with self._lock:
            if not self._mounted:
                return
            self.mounter._unmount_target(self.path, self.identity, lazy=True, daemon=self._daemon)
            self._daemon = None
            self._mounted = False
            self.mounter._release(self.path, remove_dir=True)
            log.info("mount.unmounted", **self._fields())


_MODE_WORD = {"ro": "read-only", "rw": "writable"}


def _top(target: Path) -> MountEntry | None:
    entries = mounts_at(target)
    return entries[-1] if entries else None


class Mounter:
    """Mounts camera volumes at `<runtime_dir>/mounts/<slot>` with one back end.

    Thread-safe for different slots; one volume per slot at a time (a second
    mount for a slot that has a live MountedVolume raises MountError).
    `timeout` bounds every tool run and the wait for a FUSE mount to appear.
    """

    def __init__(
        self,
        backend: str,
        runtime_dir: Path,
        timeout: float,
        camera_timezone: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise MountError(f"unknown mount back end {backend!r} (known: {', '.join(BACKENDS)})")
        self.backend = backend
        self.runtime_dir = runtime_dir
        self.timeout = timeout
        # The zone camera clocks run in (profiles.camera_timezone): file times
        # on FAT are its wall times. None: leave the drivers' default (UTC).
        self.camera_timezone = camera_timezone
        self._lock = threading.Lock()
        self._busy: set[Path] = set()

    def _time_offset(self) -> int | None:
        """Minutes east of UTC of the camera zone now (the kernel takes one fixed value)."""
        if not self.camera_timezone:
            return None
        offset = datetime.now(ZoneInfo(self.camera_timezone)).utcoffset()
        return None if offset is None else int(offset.total_seconds() // 60)

    @property
    def mounts_dir(self) -> Path:
        return self.runtime_dir / "mounts"

    def target_for(self, identity: DeviceIdentity) -> Path:
        return self.mounts_dir / slot_dirname(identity.slot)

    def mount(self, identity: DeviceIdentity) -> MountedVolume:
        """Mount `identity`'s volume read-only, nosuid, nodev, noexec.

        A mount left at the slot's mount point by an earlier run (a crash) is
        unmounted first. Raises MountError, having cleaned up, if the volume
        cannot be mounted.
        """
        if identity.fs_type not in FS_TYPES:
            raise MountError(_unsupported(identity.fs_type))
        target = self.target_for(identity).absolute()
        with self._lock:
            if target in self._busy:
                raise MountError(
                    f"slot {identity.slot} already has a volume mounted at {target}; "
                    "unmount it before mounting another"
                )
            self._busy.add(target)
        try:
            _check_devnode(identity)
            self._prepare_target(target, identity)
            daemon = None
            if self.backend == "kernel":
                self._kernel_mount(identity, target)
            else:
                daemon = self._fuse_mount(identity, target, "ro")
            entry = _top(target)
            if entry is None or "ro" not in entry.vfs_options:
                self._unmount_target(target, identity, lazy=True, daemon=daemon)
                raise MountError(
                    f"mounting {identity.devnode} at {target} did not give a read-only mount "
                    f"({'nothing mounted' if entry is None else sorted(entry.vfs_options)})"
                )
        except BaseException:
            self._release(target, remove_dir=True)
            raise
        volume = MountedVolume(self, identity, target, daemon)
        log.info("mount.mounted", **volume._fields())
        return volume

    # -- helpers shared with MountedVolume ---------------------------------------------------

    def _release(self, target: Path, remove_dir: bool) -> None:
        if remove_dir and not mounts_at(target):
            try:
                os.rmdir(target)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("mount.dir_left", path=str(target), error=exc.strerror)
        with self._lock:
            self._busy.discard(target)

    def _prepare_target(self, target: Path, identity: DeviceIdentity) -> None:
        """Make the private mounts folder and an empty, unmounted mount point."""
        try:
            self.mounts_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.lstat(self.mounts_dir)
            if not stat.S_ISDIR(st.st_mode):
                raise MountError(f"{self.mounts_dir} is not a directory; remove it")
            if stat.S_IMODE(st.st_mode) != 0o700:
                os.chmod(self.mounts_dir, 0o700)
        except OSError as exc:
            raise MountError(
                f"cannot create {self.mounts_dir} ({exc.strerror}); check daemon.runtime_dir"
            ) from None
        if mounts_at(target):
            log.warning(
                "mount.stale",
                slot=identity.slot,
                devnode=identity.devnode,
                path=str(target),
                mounted=[e.source for e in mounts_at(target)],
            )
            self._unmount_target(target, identity, lazy=True, daemon=None)
        try:
            os.mkdir(target, 0o700)
        except FileExistsError:
            self._check_empty_dir(target)
        except OSError as exc:
            raise MountError(f"cannot create the mount point {target}: {exc.strerror}") from None

    @staticmethod
    def _check_empty_dir(target: Path) -> None:
        try:
            st = os.lstat(target)
            if not stat.S_ISDIR(st.st_mode):
                raise MountError(f"{target} exists and is not a directory; remove it")
            if os.listdir(target):
                raise MountError(
                    f"{target} is not empty and nothing is mounted there: something wrote "
                    "into dockd's private mount folder; look at it and remove it"
                )
        except OSError as exc:
            raise MountError(f"cannot use the mount point {target}: {exc.strerror}") from None

    def _kernel_mount(self, identity: DeviceIdentity, target: Path) -> None:
        argv = kernel_mount_argv(
            identity.fs_type, identity.devnode, target, "ro", self._time_offset()
        )
        what = f"cannot mount {identity.devnode} (slot {identity.slot}, {identity.fs_type})"
        code, err = _run(argv, self.timeout, what)
        if code != 0:
            if mounts_at(target):  # pragma: no cover - mount failed after mounting
                self._unmount_target(target, identity, lazy=True, daemon=None)
            raise MountError(
                f"{what}: mount {_exit_text(code)}: {err}. Is the camera still docked? "
                "`dmesg` tells why the kernel refused; `dockd doctor` checks the host"
            )

    def _fuse_mount(self, identity: DeviceIdentity, target: Path, mode: str) -> _FuseDaemon:
        """Start the FUSE daemon, wait until its mount is there, set the VFS flags."""
        argv = fuse_mount_argv(identity.fs_type, identity.devnode, target, mode)
        what = (
            f"cannot mount {identity.devnode} (slot {identity.slot}, {identity.fs_type}) "
            f"{_MODE_WORD[mode]} with {argv[0]}"
        )
        # The FUSE tools read FAT's local wall times in the zone of TZ.
        env = {**os.environ, "TZ": self.camera_timezone} if self.camera_timezone else None
        daemon = _FuseDaemon(argv, env)
        try:
            deadline = time.monotonic() + self.timeout
            while not any(e.is_fuse for e in mounts_at(target)):
                if daemon.process.poll() is not None:
                    raise MountError(
                        f"{what}: {daemon.message()}. Is the camera still docked, and is "
                        f"its storage really {identity.fs_type}?"
                    )
                if time.monotonic() > deadline:
                    raise MountError(
                        f"{what}: not mounted after {self.timeout:g} s ({daemon.message()}); "
                        "unplug the camera and dock it again"
                    )
                time.sleep(0.02)
            code, err = _run(bind_remount_argv(target, mode), self.timeout, what)
            if code != 0:
                raise MountError(f"{what}: setting {mode},{VFS_FLAGS} failed: {err}")
        except BaseException:
            try:
                if mounts_at(target):
                    self._unmount_target(target, identity, lazy=True, daemon=daemon)
            finally:
                daemon.kill()
            raise
        return daemon

    def _unmount_target(
        self,
        target: Path,
        identity: DeviceIdentity,
        lazy: bool,
        daemon: _FuseDaemon | None,
    ) -> None:
        """Unmount everything at `target`, then wait for the FUSE daemon to exit.

        Waiting for the daemon matters: it writes its last changes to the
        medium when the kernel lets go, and only after it has exited may the
        camera be unplugged or the medium be opened again.
        """
        fields = {"slot": identity.slot, "devnode": identity.devnode, "path": str(target)}
        detached = False
        failures = 0
        last = ""
        while (entry := _top(target)) is not None and failures < _UNMOUNT_TRIES:
            fusermount = _fusermount() if entry.is_fuse else None
            argv = [fusermount, "-u", str(target)] if fusermount else ["umount", str(target)]
            try:
                code, last = _run(argv, self.timeout, f"cannot unmount {target}")
            except MountError as exc:
                code, last = 1, str(exc)
            if code != 0:
                failures += 1
                time.sleep(0.1 * failures)
        if _top(target) is not None:
            if not lazy:
                raise MountError(
                    f"cannot unmount {target}: {last}. Close every file and folder on the "
                    "volume first"
                )
            log.warning("mount.unmount_lazy", error=last, **fields)
            detached = True
            for _ in range(8):  # one per stacked mount; more would be absurd
                entry = _top(target)
                if entry is None:
                    break
                fusermount = _fusermount() if entry.is_fuse else None
                argv = [fusermount, "-u", "-z"] if fusermount else ["umount", "-l"]
                try:
                    _, last = _run([*argv, str(target)], self.timeout, f"cannot unmount {target}")
                except MountError as exc:
                    last = str(exc)
            if _top(target) is not None:
                raise MountError(
                    f"cannot unmount {target}, not even lazily: {last}. "
                    f"`fuser -vm {target}` shows who holds it"
                )
        if daemon is None:
            return
        if detached:
            # Whoever still holds a file reads on through the detached mount;
            # the daemon exits when they close it. Reap it then, without
            # making the caller wait and without cutting off the reader.
            threading.Thread(
                target=daemon.process.wait, name="dockd-fuse-reaper", daemon=True
            ).start()
        elif not daemon.wait(self.timeout):
            log.warning("mount.fuse_killed", pid=daemon.process.pid, **fields)
            daemon.kill()


# BLKROGET = _IO(0x12, 94), linux/fs.h: the block device's read-only flag
# (a write-protect switch, or a read-only loop device).
_BLKROGET = 0x125E


def is_write_protected(devnode: str) -> bool:
    """True if the kernel says the block device is read-only; False if not or unknown."""
    try:
        fd = os.open(devnode, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        flag = fcntl.ioctl(fd, _BLKROGET, struct.pack("i", 0))
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(struct.unpack("i", flag)[0])


def _check_devnode(identity: DeviceIdentity) -> None:
    devnode = _checked_devnode_path(identity.devnode)
    try:
        st = os.stat(devnode)
    except FileNotFoundError:
        raise MountError(
            f"{devnode} is gone: the camera in slot {identity.slot} was unplugged before it "
            "could be mounted; dock it again"
        ) from None
    except OSError as exc:
        raise MountError(f"cannot reach {devnode}: {exc.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise MountError(f"{devnode} is not a block device; udev named something else")
