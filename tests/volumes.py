"""Real camera volumes for tests: FAT32/exFAT images, FUSE mounts, a tiny tmpfs.

Everything here drives the real tools (dosfstools, mtools, fusefat,
exfat-fuse, losetup, mount); nothing is simulated. Every context manager
undoes what it did, also when the test body fails, so that no mount is
left behind in pytest's temporary directories.

mtools reads and writes an image directly, without FUSE: it is the
independent witness of what a FUSE mount really left on the medium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import is_root_with_fuse

REPO = Path(__file__).resolve().parent.parent
# mtools refuses images whose geometry it does not recognise unless told not to.
_MTOOLS_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}

FAT_TOOLS = ("mkfs.vfat", "mcopy", "mmd", "mdir", "fusefat", "fusermount")
EXFAT_TOOLS = ("mkfs.exfat", "mount.exfat-fuse", "losetup", "fusermount")


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


def needs_root_fuse(*tools: str) -> pytest.MarkDecorator:
    """Skip unless root with /dev/fuse and fusefat, and every tool named is installed."""
    if not is_root_with_fuse():
        return pytest.mark.skip(reason="needs root, /dev/fuse and fusefat (mounts real volumes)")
    missing = missing_tools(*tools)
    return pytest.mark.skipif(
        bool(missing), reason=f"tools not installed: {', '.join(missing) or '-'}"
    )


def run(*args: str | Path, check: bool = True, env: dict[str, str] | None = None) -> str:
    """Run a tool; return its stdout; raise with its stderr on failure."""
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=120
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} exited {proc.returncode}: {proc.stderr.strip()}"
        )
    return proc.stdout


# -- FAT32 images through mtools --------------------------------------------------


def make_fat32_image(path: Path, size_mib: int = 64) -> Path:
    with open(path, "wb") as f:
        f.truncate(size_mib << 20)
    # No volume label: fusefat would list the label entry as an empty file.
    run("mkfs.vfat", "-F", "32", path)
    return path


def _fat_exists(image: Path, rel: str) -> bool:
    proc = subprocess.run(
        ["mdir", "-i", str(image), "-b", f"::/{rel}"],
        capture_output=True,
        env=_MTOOLS_ENV,
        timeout=60,
    )
    return proc.returncode == 0


def fat_put(image: Path, rel: str, data: bytes | Path) -> None:
    """Place a file at `rel` (folders made as needed); `data` may be a file to copy."""
    parts = rel.split("/")
    for depth in range(1, len(parts)):
        folder = "/".join(parts[:depth])
        if not _fat_exists(image, folder):
            run("mmd", "-i", image, f"::/{folder}", env=_MTOOLS_ENV)
    with tempfile.TemporaryDirectory() as tmp:
        source = data if isinstance(data, Path) else Path(tmp) / "data"
        if isinstance(data, bytes):
            source.write_bytes(data)
        run("mcopy", "-i", image, "-o", source, f"::/{rel}", env=_MTOOLS_ENV)


def fat_list(image: Path, folder: str) -> set[str]:
    """Names (long names) of the entries of `folder` on the image; folders end in '/'."""
    out = run("mdir", "-i", image, "-b", f"::/{folder}", env=_MTOOLS_ENV)
    prefix = f"::/{folder.strip('/')}/"
    return {line[len(prefix) :] for line in out.splitlines() if line.startswith(prefix)}


def fat_files(image: Path) -> set[str]:
    """Relative paths of every file (not folder) on the image, by long name."""
    out = run("mdir", "-i", image, "-/", "-b", "::/", env=_MTOOLS_ENV)
    return {
        line[3:] for line in out.splitlines() if line.startswith("::/") and not line.endswith("/")
    }


def fat_read(image: Path, rel: str) -> bytes:
    proc = subprocess.run(
        ["mcopy", "-i", str(image), f"::/{rel}", "-"],
        capture_output=True,
        env=_MTOOLS_ENV,
        timeout=120,
        check=True,
    )
    return proc.stdout


# -- mounts -------------------------------------------------------------------------


def _unescape_mount_path(text: str) -> str:
    # /proc/self/mounts escapes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def is_mounted(path: Path) -> bool:
    """True if `path` is a mount point, also a dead FUSE one (which stat cannot reach)."""
    target = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(_unescape_mount_path(line.split()[1]) == target for line in f)


def _wait_mounted(path: Path, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not is_mounted(path):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode} without mounting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} not mounted after {timeout} s")
        time.sleep(0.02)


def _fuse_unmount(path: Path, proc: subprocess.Popen[bytes]) -> None:
    if is_mounted(path):
        fusermount = shutil.which("fusermount") or "fusermount3"
        if subprocess.run([fusermount, "-u", str(path)], capture_output=True).returncode:
            subprocess.run([fusermount, "-u", "-z", str(path)], capture_output=True)
    try:
        # The daemon writes out its state and exits once the kernel lets go.
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class FuseMount:
    """A FUSE file system daemon we started in the foreground, and its mount point."""

    path: Path
    process: subprocess.Popen[bytes]

    def unplug(self) -> None:
        """The medium is gone: SIGKILL the daemon; every access then fails (ENOTCONN)."""
        self.process.kill()
        self.process.wait()


@contextmanager
def _fuse_daemon(argv: Sequence[str | Path], mountpoint: Path) -> Iterator[FuseMount]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    # Both daemons chatter on stdout even without debug; nobody reads it.
    proc = subprocess.Popen(
        [str(a) for a in argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_mounted(mountpoint, proc)
        yield FuseMount(mountpoint, proc)
    finally:
        _fuse_unmount(mountpoint, proc)


@contextmanager
def fusefat_mount(image: Path, mountpoint: Path) -> Iterator[FuseMount]:
    """Mount a FAT image read-write with fusefat (foreground, so we own its pid).

    Not with use_ino: fusefat then reports inode 0 for files without clusters
    and empty clips vanish from directory listings. Without it, libfuse hands
    out a new inode number whenever the kernel has evicted an inode and looks
    the name up again, as kernel vfat (iunique) does too.
    """
    with _fuse_daemon(["fusefat", "-f", "-o", "rw+", image, mountpoint], mountpoint) as m:
        yield m


@contextmanager
def loop_device(image: Path) -> Iterator[str]:
    """Attach `image` to a free loop device; skip the test if that is not permitted."""
    proc = subprocess.run(
        ["losetup", "-f", "--show", str(image)], capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        pytest.skip(f"losetup not permitted here: {proc.stderr.strip()}")
    device = proc.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], capture_output=True, timeout=60)


@contextmanager
def exfat_mount(device: str, mountpoint: Path) -> Iterator[FuseMount]:
    """Mount an exFAT block device with exfat-fuse; -d keeps it in the foreground."""
    with _fuse_daemon(["mount.exfat-fuse", "-d", device, mountpoint], mountpoint) as m:
        yield m


@contextmanager
def tmpfs_mount(path: Path, size: str = "8M") -> Iterator[Path]:
    """A tiny tmpfs at `path` (for a store that fills up); unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


# -- the real CLI ---------------------------------------------------------------------


def write_config(path: Path, **ingest: int | float | bool | str) -> Path:
    """A dockd.toml with an [ingest] table of the given keys."""
    lines = ["[ingest]"]
    for key, value in ingest.items():
        text = str(value).lower() if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {text}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def dockd_argv(config: Path, state_dir: Path, *args: str | Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dockd",
        "--config",
        str(config),
        "--state-dir",
        str(state_dir),
        *map(str, args),
    ]


def run_dockd(
    config: Path, state_dir: Path, *args: str | Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the dockd CLI as its own process, as the dock would."""
    return subprocess.run(
        dockd_argv(config, state_dir, *args),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )
