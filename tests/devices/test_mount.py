"""Mounting hostile camera media (invariant 6) read-only, and writable only for the wipe.

The FUSE back end is exercised for real: FAT32 and exFAT images on loop
devices, fusefat and exfat-fuse, read back with mtools straight from the
image. The kernel back end cannot run here (this kernel has no vfat), so
its command lines are checked as values.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from dockd.devices.identity import DeviceIdentity
from dockd.devices.mount import (
    MountedVolume,
    Mounter,
    MountError,
    backend_available,
    bind_remount_argv,
    fuse_mount_argv,
    is_write_protected,
    kernel_mount_argv,
    kernel_remount_argv,
    mounts_at,
    parse_mountinfo,
)
from tests.volumes import (
    EXFAT_TOOLS,
    FAT_TOOLS,
    exfat_mount,
    fat_files,
    fat_put,
    loop_device,
    make_fat32_image,
    needs_root_fuse,
    run,
)

SLOT = "pci-0000:00:14.0-usb-0:2"
TARGET = Path("/run/dockd/mounts/slot")


def identity(devnode: str, fs_type: str = "vfat", slot: str = SLOT) -> DeviceIdentity:
    return DeviceIdentity("CAM00001", slot, devnode, "/sys/devices/x/sdb1", fs_type)


# -- command lines (pure) -------------------------------------------------------------------


def test_kernel_vfat_command_line() -> None:
    assert kernel_mount_argv("vfat", "/dev/sdb1", TARGET) == [
        "mount",
        "-i",  # never a /sbin/mount.vfat helper
        "-t",
        "vfat",
        "-o",
        "ro,nosuid,nodev,noexec,noatime,uid=0,gid=0,fmask=0177,dmask=0077,"
        "utf8,shortname=mixed,errors=remount-ro",
        "/dev/sdb1",
        str(TARGET),
    ]


def test_kernel_exfat_command_line() -> None:
    argv = kernel_mount_argv("exfat", "/dev/sdb1", TARGET, "rw")
    assert argv[:4] == ["mount", "-i", "-t", "exfat"]
    assert argv[5] == (
        "rw,nosuid,nodev,noexec,noatime,uid=0,gid=0,fmask=0177,dmask=0077,"
        "iocharset=utf8,errors=remount-ro"
    )


def test_remounts_restate_the_flags_that_must_stay() -> None:
    assert kernel_remount_argv(TARGET, "rw") == [
        "mount",
        "-i",
        "-o",
        "remount,rw,nosuid,nodev,noexec",
        str(TARGET),
    ]
    assert bind_remount_argv(TARGET, "ro") == [
        "mount",
        "-o",
        "remount,bind,ro,nosuid,nodev,noexec",
        str(TARGET),
    ]


def test_fuse_command_lines() -> None:
    assert fuse_mount_argv("vfat", "/dev/loop3", TARGET) == [
        "fusefat",
        "-f",
        "-s",
        "-o",
        "ro,nosuid,nodev,noexec",
        "/dev/loop3",
        str(TARGET),
    ]
    assert fuse_mount_argv("vfat", "/dev/loop3", TARGET, "rw")[4] == "rw+,nosuid,nodev,noexec"
    assert fuse_mount_argv("exfat", "/dev/loop3", TARGET) == [
        "mount.exfat-fuse",
        "-d",
        "-o",
        "dmask=0077,fmask=0177,ro",
        "/dev/loop3",
        str(TARGET),
    ]
    assert "ro" not in fuse_mount_argv("exfat", "/dev/loop3", TARGET, "rw")[3].split(",")


@pytest.mark.parametrize(
    "call",
    [
        lambda: kernel_mount_argv("ntfs", "/dev/sdb1", TARGET),
        lambda: fuse_mount_argv("iso9660", "/dev/sdb1", TARGET),
        lambda: kernel_mount_argv("vfat", "-oremount", TARGET),  # never taken for an option
        lambda: fuse_mount_argv("vfat", "sdb1", TARGET),
        lambda: kernel_remount_argv(TARGET, "rw,suid"),
        lambda: bind_remount_argv(TARGET, ""),
        lambda: Mounter("nfs", Path("/run/dockd"), 1.0),
    ],
)
def test_bad_input_fails_closed_with_mount_error(call: object) -> None:
    with pytest.raises(MountError):
        call()  # type: ignore[operator]


def test_parse_mountinfo() -> None:
    text = (
        "42 27 0:39 / /run/dockd/mounts/a\\040b ro,nosuid,nodev,noexec,relatime shared:5 "
        "- fuse.fusefat fusefat ro,user_id=0,group_id=0\n"
        "43 27 7:0 / /mnt rw,relatime - fuseblk /dev/loop0 rw,default_permissions\n"
        "garbage line\n"
    )
    first, second = parse_mountinfo(text)
    assert first.mount_point == "/run/dockd/mounts/a b"
    assert {"ro", "nosuid", "nodev", "noexec"} <= first.vfs_options
    assert (first.fs_type, first.source, first.is_fuse) == ("fuse.fusefat", "fusefat", True)
    assert (second.fs_type, second.source, second.is_fuse) == ("fuseblk", "/dev/loop0", True)
    assert "rw" in second.super_options


def test_backend_available_names_what_is_missing() -> None:
    assert backend_available("tape") == ["unknown mount back end 'tape' (known: kernel, fuse)"]
    with open("/proc/filesystems") as f:
        kernel_has_vfat = any(line.split()[-1] == "vfat" for line in f if line.strip())
    problems = backend_available("kernel", ["vfat"])
    if not kernel_has_vfat:  # this host: no vfat in the kernel, no modprobe
        assert any("vfat" in p for p in problems)
    for problem in backend_available("fuse"):
        assert "install" in problem or "load" in problem


# -- real mounts through FUSE ---------------------------------------------------------------


@pytest.fixture
def runtime_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run"
    yield path
    # A failing test must not leave a mount in pytest's temporary folders.
    mounts = path / "mounts"
    if mounts.is_dir():
        for target in mounts.iterdir():
            for _ in mounts_at(target.absolute()):
                subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


@pytest.fixture
def mounter(runtime_dir: Path) -> Mounter:
    return Mounter("fuse", runtime_dir, timeout=15.0)


@pytest.fixture
def fat_camera(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A FAT32 camera on a loop device: (image, device), with two recordings."""
    image = make_fat32_image(tmp_path / "cam.img", size_mib=40)
    fat_put(image, "DCIM/100MEDIA/DSJ0001_20261125080000_0001.MP4", b"first clip")
    fat_put(image, "DCIM/100MEDIA/DSJ0001_20261125081000_0002.MP4", b"second clip")
    with loop_device(image) as device:
        yield image, device


@pytest.fixture
def exfat_camera(tmp_path: Path) -> Iterator[str]:
    """An exFAT camera on a loop device, with one recording written through exfat-fuse."""
    image = tmp_path / "cam.img"
    with open(image, "wb") as f:
        f.truncate(40 << 20)
    with loop_device(image) as device:
        run("mkfs.exfat", device)
        with exfat_mount(device, tmp_path / "prep") as m:
            (m.path / "DCIM").mkdir()
            (m.path / "DCIM" / "CLIP0001.MP4").write_bytes(b"exfat clip")
        yield device


def assert_contained(volume: MountedVolume) -> None:
    """Read-only, nosuid, nodev, noexec, per the kernel; writes fail with EROFS."""
    [entry] = mounts_at(volume.path)
    assert {"ro", "nosuid", "nodev", "noexec"} <= entry.vfs_options, entry
    with pytest.raises(OSError) as info:
        (volume.path / "NEW.TXT").write_bytes(b"x")
    assert info.value.errno == errno.EROFS


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_fat_volume_is_mounted_read_only_and_contained(
    mounter: Mounter, runtime_dir: Path, fat_camera: tuple[Path, str]
) -> None:
    """Invariant 6 and R3: nothing on the camera can be changed, run or used as a device."""
    _, device = fat_camera
    with capture_logs() as logs, mounter.mount(identity(device)) as volume:
        assert volume.path == runtime_dir / "mounts" / "pci-0000_00_14.0-usb-0_2"
        assert (runtime_dir / "mounts").stat().st_mode & 0o777 == 0o700
        clip = volume.path / "DCIM" / "100MEDIA" / "DSJ0001_20261125080000_0001.MP4"
        assert clip.read_bytes() == b"first clip"
        assert_contained(volume)
        assert volume.mode == "ro"
    assert logs[0] == {
        "event": "mount.mounted",
        "log_level": "info",
        "slot": SLOT,
        "devnode": device,
        "mode": "ro",
        "backend": "fuse",
        "path": str(volume.path),
    }
    assert logs[-1]["event"] == "mount.unmounted"


@pytest.mark.root
@needs_root_fuse(*EXFAT_TOOLS, "mkfs.exfat")
def test_exfat_volume_is_mounted_read_only_and_contained(
    mounter: Mounter, exfat_camera: str
) -> None:
    """exfat-fuse ignores nosuid/nodev/noexec: the bind remount must set them."""
    with mounter.mount(identity(exfat_camera, "exfat")) as volume:
        assert (volume.path / "DCIM" / "CLIP0001.MP4").read_bytes() == b"exfat clip"
        assert_contained(volume)
        [entry] = mounts_at(volume.path)
        assert entry.fs_type == "fuseblk"


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_writable_lets_the_wipe_delete_and_then_locks_again(
    mounter: Mounter, fat_camera: tuple[Path, str]
) -> None:
    image, device = fat_camera
    first = "DCIM/100MEDIA/DSJ0001_20261125080000_0001.MP4"
    with capture_logs() as logs, mounter.mount(identity(device)) as volume:
        with volume.writable() as path:
            assert volume.mode == "rw"
            [entry] = mounts_at(volume.path)
            assert {"rw", "nosuid", "nodev", "noexec"} <= entry.vfs_options
            (path / first).unlink()
        assert volume.mode == "ro"
        assert_contained(volume)
        assert not (volume.path / first).exists()
    # The deletion reached the medium: mtools reads the image without FUSE.
    assert fat_files(image) == {"DCIM/100MEDIA/DSJ0001_20261125081000_0002.MP4"}
    remounts = [(e["event"], e["mode"]) for e in logs if e["event"] == "mount.remounted"]
    assert remounts == [("mount.remounted", "rw"), ("mount.remounted", "ro")]


@pytest.mark.root
@needs_root_fuse(*EXFAT_TOOLS, "mkfs.exfat")
def test_exfat_writable_delete_is_on_the_medium(mounter: Mounter, exfat_camera: str) -> None:
    cam = identity(exfat_camera, "exfat")
    with mounter.mount(cam) as volume:
        with volume.writable() as path:
            (path / "DCIM" / "CLIP0001.MP4").unlink()
        assert_contained(volume)
    with mounter.mount(cam) as volume:  # a fresh mount reads what is on the medium
        assert list((volume.path / "DCIM").iterdir()) == []


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_leaving_writable_by_an_error_still_locks_again(
    mounter: Mounter, fat_camera: tuple[Path, str]
) -> None:
    _, device = fat_camera
    with mounter.mount(identity(device)) as volume:
        with pytest.raises(RuntimeError), volume.writable():
            raise RuntimeError("the session failed mid-wipe")
        assert_contained(volume)
        with pytest.raises(MountError, match="does not nest"), volume.writable(), volume.writable():
            pass  # pragma: no cover
        assert_contained(volume)


@contextmanager
def read_only_loop(image: Path) -> Iterator[str]:
    """A write-protected medium: a read-only loop device."""
    proc = subprocess.run(
        ["losetup", "-r", "-f", "--show", str(image)], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        pytest.skip(f"losetup not permitted here: {proc.stderr.strip()}")
    device = proc.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=60)


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, *EXFAT_TOOLS, "mkfs.exfat")
@pytest.mark.parametrize("fs_type", ["vfat", "exfat"])
def test_write_protected_camera_is_never_reported_writable(
    mounter: Mounter, tmp_path: Path, fs_type: str
) -> None:
    """Fails closed: fusefat would mount a write-protected medium "rw" and fail every
    deletion with EPERM; writable() must refuse up front and leave it read-only."""
    image = tmp_path / "cam.img"
    if fs_type == "vfat":
        make_fat32_image(image, size_mib=40)
        fat_put(image, "CLIP.MP4", b"clip")
    else:
        with open(image, "wb") as f:
            f.truncate(40 << 20)
        with loop_device(image) as device:
            run("mkfs.exfat", device)
    with read_only_loop(image) as device, mounter.mount(identity(device, fs_type)) as volume:
        assert is_write_protected(device)
        with pytest.raises(MountError, match="write-protected"), volume.writable():
            pytest.fail("writable() let a write-protected medium through")  # pragma: no cover
        assert volume.mounted and volume.mode == "ro"
        assert_contained(volume)


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_unmount_removes_mount_and_folder_and_is_idempotent(
    mounter: Mounter, fat_camera: tuple[Path, str]
) -> None:
    _, device = fat_camera
    volume = mounter.mount(identity(device))
    daemon = volume._daemon
    assert daemon is not None
    volume.unmount()
    assert not volume.mounted
    assert mounts_at(volume.path) == []
    assert not volume.path.exists()
    assert daemon.process.poll() is not None  # fusefat has written its last block and gone
    volume.unmount()  # again: nothing to do, no error
    with pytest.raises(MountError, match="not mounted"), volume.writable():
        pass  # pragma: no cover
    # The slot is free again.
    mounter.mount(identity(device)).unmount()


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_one_volume_per_slot(mounter: Mounter, fat_camera: tuple[Path, str]) -> None:
    _, device = fat_camera
    with mounter.mount(identity(device)) as volume:
        with pytest.raises(MountError, match="already has a volume"):
            mounter.mount(identity(device))
        assert volume.mounted and mounts_at(volume.path)  # the live mount is left alone


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
@pytest.mark.parametrize("dead", [False, True])
def test_a_mount_left_by_a_crash_is_replaced(
    runtime_dir: Path, fat_camera: tuple[Path, str], dead: bool
) -> None:
    """After a crash the slot's mount point may still hold a mount, alive or with its
    FUSE daemon gone (every access: ENOTCONN); the next mount clears it first."""
    _, device = fat_camera
    target = runtime_dir / "mounts" / "pci-0000_00_14.0-usb-0_2"
    target.mkdir(parents=True)
    stale = subprocess.Popen(
        ["fusefat", "-f", "-o", "ro", device, str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not mounts_at(target):
            assert time.monotonic() < deadline and stale.poll() is None
            time.sleep(0.02)
        if dead:
            stale.kill()
            stale.wait()
            with pytest.raises(OSError) as info:
                os.listdir(target)
            assert info.value.errno == errno.ENOTCONN
        with (
            capture_logs() as logs,
            Mounter("fuse", runtime_dir, 15.0).mount(identity(device)) as v,
        ):
            assert len(mounts_at(target)) == 1
            assert (v.path / "DCIM").is_dir()
        assert "mount.stale" in [e["event"] for e in logs]
        assert stale.wait(10) is not None  # the old daemon let go
    finally:
        if stale.poll() is None:
            stale.kill()
        stale.wait()


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_busy_volume_is_unmounted_lazily(mounter: Mounter, fat_camera: tuple[Path, str]) -> None:
    _, device = fat_camera
    volume = mounter.mount(identity(device))
    daemon = volume._daemon
    assert daemon is not None
    clip = volume.path / "DCIM" / "100MEDIA" / "DSJ0001_20261125080000_0001.MP4"
    with open(clip, "rb") as held:
        # The FUSE back end must unmount to become writable: refused while busy,
        # and the volume stays mounted read-only.
        with pytest.raises(MountError, match="Close every file"), volume.writable():
            pass  # pragma: no cover
        assert volume.mounted and volume.mode == "ro"
        assert_contained(volume)
        with capture_logs() as logs:
            volume.unmount()
        assert "mount.unmount_lazy" in [e["event"] for e in logs]
        assert mounts_at(volume.path) == []
        assert not volume.path.exists()
        # Detached, not cut off: the holder reads on, and the daemon lives until it closes.
        assert held.read() == b"first clip"
        assert daemon.process.poll() is None
    assert daemon.wait(10.0)


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_missing_device_raises_and_leaves_nothing(mounter: Mounter, runtime_dir: Path) -> None:
    with pytest.raises(MountError, match="unplugged"):
        mounter.mount(identity("/dev/dockd-test-no-such-device"))
    assert not mounter.target_for(identity("/dev/null")).exists()
    with pytest.raises(MountError, match="not a block device"):
        mounter.mount(identity("/dev/null"))


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_garbage_medium_raises_and_leaves_nothing(mounter: Mounter, tmp_path: Path) -> None:
    """fusefat dies of SIGFPE on a medium that is no FAT; that must be a clean MountError."""
    image = tmp_path / "junk.img"
    with open(image, "wb") as f:
        f.truncate(4 << 20)
    with loop_device(image) as device:
        with pytest.raises(MountError) as info:
            mounter.mount(identity(device))
        assert "fusefat" in str(info.value)
        target = mounter.target_for(identity(device)).absolute()
        assert mounts_at(target) == []
        assert not target.exists()
        # The failure freed the slot.
        with pytest.raises(MountError):
            mounter.mount(identity(device))


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_kernel_backend_mounts_contained_or_fails_cleanly(
    runtime_dir: Path, fat_camera: tuple[Path, str]
) -> None:
    """Where the kernel has vfat the mount must be contained; where it has not (this
    host), mount(8)'s refusal must be a MountError that leaves nothing behind."""
    image, device = fat_camera
    mounter = Mounter("kernel", runtime_dir, timeout=15.0)
    cam = identity(device)
    if not backend_available("kernel", ["vfat"]):
        with mounter.mount(cam) as volume:  # pragma: no cover - hosts with kernel vfat
            assert_contained(volume)
            with volume.writable() as path:
                (path / "DCIM" / "100MEDIA" / "DSJ0001_20261125080000_0001.MP4").unlink()
            assert_contained(volume)
        assert len(fat_files(image)) == 1  # pragma: no cover
        return
    with pytest.raises(MountError, match="mount exited with status") as info:
        mounter.mount(cam)
    assert "dmesg" in str(info.value)
    target = mounter.target_for(cam).absolute()
    assert mounts_at(target) == [] and not target.exists()


def test_unsupported_filesystem_is_refused_before_anything(mounter: Mounter) -> None:
    with pytest.raises(MountError, match="only vfat and exfat"):
        mounter.mount(identity("/dev/loop0", "ntfs"))


def test_kernel_options_carry_the_camera_time_zone() -> None:
    """FAT holds the camera's wall time: the kernel must subtract the zone's offset."""
    argv = kernel_mount_argv("vfat", "/dev/sdb1", TARGET, "ro", time_offset=480)
    assert argv[5].endswith(",time_offset=480,utf8,shortname=mixed,errors=remount-ro")
    shanghai = Mounter("kernel", TARGET, 5.0, "Asia/Shanghai")
    assert shanghai._time_offset() == 480
    assert Mounter("kernel", TARGET, 5.0)._time_offset() is None


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_fuse_file_times_are_read_in_the_camera_time_zone(
    runtime_dir: Path, tmp_path: Path
) -> None:
    """A camera stamps 17:00 Shanghai time; the mounted file must say 09:00 UTC.

    The date is not compared: fusefat 0.1a reports FAT dates wrong (seen here:
    2026-11-25 read back as 2026-12-25, and as 2028-01-30 under
    `faketime '+400 days'`, so its date depends on the day it runs too), a defect of
    the tool, which is why the kernel back end is the default and times come
    from file names and containers first (ingest/timing.py). The time of day is
    what the camera's zone decides.
    """
    import shutil
    from datetime import UTC, datetime

    image = make_fat32_image(tmp_path / "cam.img", size_mib=40)
    src = tmp_path / "clip.MP4"
    src.write_bytes(b"clip")
    stamp = datetime(2026, 11, 25, 9, 0, tzinfo=UTC).timestamp()
    os.utime(src, (stamp, stamp))
    env = {**os.environ, "TZ": "Asia/Shanghai", "MTOOLS_SKIP_CHECK": "1"}
    subprocess.run(["mcopy", "-m", "-i", str(image), str(src), "::CLIP.MP4"], env=env, check=True)
    assert shutil.which("fusefat")
    with loop_device(image) as device:
        mounter = Mounter("fuse", runtime_dir, 15.0, "Asia/Shanghai")
        with mounter.mount(identity(device)) as volume:
            seen = datetime.fromtimestamp((volume.path / "CLIP.MP4").stat().st_mtime, tz=UTC)
    assert (seen.hour, seen.minute) == (9, 0), seen
