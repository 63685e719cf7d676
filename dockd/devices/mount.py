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

import fcntl
import os
import shutil
import stat
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog

from dockd.clock import Clock, SystemClock
from dockd.devices.identity import DeviceIdentity, slot_dirname
from dockd.devices.mount_argv import (  # re-exported: the mount API is one import
    BACKENDS,
    FS_TYPES,
    FUSE_TOOLS,
    VFS_FLAGS,
    MountEntry,
    MountError,
    _checked_devnode_path,
    _unsupported,
    bind_remount_argv,
    fuse_mount_argv,
    kernel_mount_argv,
    kernel_remount_argv,
    parse_mountinfo,
)
from dockd.devices.mount_proc import _exit_text, _FuseDaemon, _run

log = structlog.get_logger("dockd.devices")

MOUNTINFO = Path("/proc/self/mountinfo")

# How often a busy unmount is tried before falling back to a lazy one.
_UNMOUNT_TRIES = 3
# -- /proc/self/mountinfo -------------------------------------------------------------


def mounts_at(target: Path) -> list[MountEntry]:
    """What is mounted at `target` (an absolute path), bottom first."""
    where = os.path.normpath(target)
    return [e for e in parse_mountinfo(MOUNTINFO.read_text()) if e.mount_point == where]


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
        clock: Clock | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise MountError(f"unknown mount back end {backend!r} (known: {', '.join(BACKENDS)})")
        self.backend = backend
        self.runtime_dir = runtime_dir
        self.timeout = timeout
        # The zone camera clocks run in (profiles.camera_timezone): file times
        # on FAT are its wall times. None: leave the drivers' default (UTC).
        self.camera_timezone = camera_timezone
        # Which offset the zone has today (summer time) is the caller's clock's say.
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._busy: set[Path] = set()

    def _time_offset(self) -> int | None:
        """Minutes east of UTC of the camera zone now (the kernel takes one fixed value)."""
        if not self.camera_timezone:
            return None
        offset = self.clock.now().astimezone(ZoneInfo(self.camera_timezone)).utcoffset()
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
