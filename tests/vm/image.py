"""The guest's disk: Debian 12 from the host's apt source, with dockd installed.

Three cached layers (in `.vm-cache/`), so that a change to dockd's code costs
an install, not a rebuild of the operating system:

1. The base image (keyed by the package list, the build recipe below and the
   apt source): mmdebstrap of bookworm with systemd, udev, dbus, a kernel,
   qemu-guest-agent, make, and every package of the Makefile's
   RUNTIME_PACKAGES, so that `make install` (which first runs `apt-runtime`)
   finds nothing to install in the offline guest. Made into a sparse raw
   ext4 image with `mkfs.ext4 -d`; the guest's own vmlinuz and initrd are
   copied beside it, for qemu's -kernel/-initrd. About 90 s on two cores.
2. The wheelhouse (keyed by dockd's dependencies and build requirements and
   the host's Python): wheels built on the host. The host's Python (pyenv
   3.11.7) and the guest's (Debian's 3.11.2) share the cp311 ABI, so the C
   extension built here (systemd-python) loads there.
3. The installed image (keyed by the checkout's files): a copy of the base
   with `make install WHEELHOUSE=...` run in a chroot (build_installed says
   why not in the guest). Each test boots a qcow2 overlay of it and runs
   `make install DOCKD_ENABLE=1` again in the live guest (tests/vm/guest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
SUITE = "bookworm"
# What the guest needs besides dockd's runtime packages: an init that is
# systemd, udevd, dbus (without it logind ignores the ACPI power button and
# `system_powerdown` does nothing), a kernel and an initramfs generator, the
# guest agent the host drives it through, make for `make install`, kmod for
# modprobe, mtools to look at a camera from inside when debugging.
GUEST_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "linux-image-amd64",
    "initramfs-tools",
    "qemu-guest-agent",
    "make",
    "kmod",
    "mtools",
)
ROOT_SIZE = "3G"  # sparse: the image file holds only what is written


@dataclass(frozen=True)
class BaseImage:
    """A bootable guest disk (raw ext4, never written: guests run on overlays)."""

    root: Path
    kernel: Path
    initrd: Path


def runtime_packages() -> list[str]:
    """RUNTIME_PACKAGES as the Makefile has it (asked of make, not parsed)."""
    out = subprocess.run(
        ["make", "-s", "-C", str(REPO), "--eval=vm-print-runtime: ; @echo $(RUNTIME_PACKAGES)",
         "vm-print-runtime"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return out.split()


def package_list() -> list[str]:
    return sorted(set(GUEST_PACKAGES) | set(runtime_packages()))


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:16]


def cache_root() -> Path:
    """`.vm-cache/` in the checkout (or $DOCKD_VM_CACHE); it ignores itself for git."""
    root = Path(os.environ.get("DOCKD_VM_CACHE", REPO / ".vm-cache"))
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return root


def _log_run(argv: list[str], log: Path, timeout: float) -> None:
    """Run a build step with its output in `log`; raise with the log's tail if it fails."""
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}; {log}:\n" + "\n".join(tail))


# Before the packages are installed (mmdebstrap --essential-hook): a small
# initramfs, made once by the kernel's own postinst. qemu gives virtio disks
# only, and the default (MODULES=most, 35 MB) cost ~4 s of decompression per
# boot under TCG.
_ESSENTIAL = [
    'mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"',
    'echo MODULES=list > "$1/etc/initramfs-tools/conf.d/dockd-vm.conf"',
    'printf "virtio_pci\\nvirtio_blk\\next4\\n"'
    ' > "$1/usr/share/initramfs-tools/modules.d/dockd-vm"',
]

# Never unpacked: documentation, and kernel drivers for hardware no qemu
# guest here has (a third of the image; less to unpack and to copy).
_MODULES = "/lib/modules/*/kernel"  # as bookworm's packages ship it (dpkg -L)
_EXCLUDE = [
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    *(
        f"{_MODULES}/{d}/*"
        for d in (
            "drivers/gpu", "drivers/net/wireless", "drivers/net/ethernet", "drivers/media",
            "sound", "drivers/infiniband", "drivers/staging", "drivers/iio",
            "drivers/bluetooth", "net/bluetooth", "drivers/isdn",
        )
    ),
]  # fmt: skip

# After (--customize-hook), before the image is made.
_CUSTOMIZE = [
    'echo dock > "$1/etc/hostname"',
    # The journal survives power cuts and reboots: the tests read earlier boots.
    'mkdir -p "$1/etc/systemd/journald.conf.d"',
    'printf "[Journal]\\nStorage=persistent\\n" > "$1/etc/systemd/journald.conf.d/vm.conf"',
    # e2scrub_reap (LVM snapshot clean-up; there is no LVM) took 10-14 s of
    # CPU at every boot under TCG.
    'chroot "$1" systemctl mask e2scrub_reap.service e2scrub_all.timer',
]


def _build_dir() -> Path:
    """Where the root tree is unpacked: RAM if there is room (dpkg's many small
    writes and fsyncs then cost nothing), else the cache folder."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 << 30:
        return shm
    return cache_root()


def build_base(log: Path) -> BaseImage:
    """The cached base image; built (90-200 s, by the host's load) when its key changed."""
    packages = package_list()
    recipe = json.dumps([packages, _ESSENTIAL, _EXCLUDE, _CUSTOMIZE, SUITE])
    key = _digest(recipe, APT_SOURCES.read_bytes())
    folder = cache_root() / f"base-{key}"
    image = BaseImage(folder / "root.img", folder / "vmlinuz", folder / "initrd.img")
    if (folder / "done").exists():
        return image
    shutil.rmtree(folder, ignore_errors=True)
    # Older bases are dead weight (3 GB sparse each, ~1.4 GB used).
    for old in cache_root().glob("base-*"):
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True)
    tree = _build_dir() / f"dockd-vm-root-{key}"
    shutil.rmtree(tree, ignore_errors=True)
    t0 = time.monotonic()
    try:
        argv = [
            "mmdebstrap", "--mode=root", "--variant=minbase",
            "--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata",
            f"--include={','.join(packages)}",
            *[f"--dpkgopt=path-exclude={path}" for path in _EXCLUDE],
            *[f"--essential-hook={hook}" for hook in _ESSENTIAL],
            *[f"--customize-hook={hook}" for hook in _CUSTOMIZE],
            SUITE, str(tree), str(APT_SOURCES),
        ]  # fmt: skip
        _log_run(argv, log, timeout=900)
        boot = tree / "boot"
        shutil.copy(next(boot.glob("vmlinuz-*")), image.kernel)
        shutil.copy(next(boot.glob("initrd.img-*")), image.initrd)
        _log_run(["mkfs.ext4", "-q", "-F", "-d", str(tree), str(image.root), ROOT_SIZE], log, 600)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    (folder / "packages.txt").write_text("\n".join(packages) + "\n")
    (folder / "done").write_text(f"{time.monotonic() - t0:.1f}\n")
    return image


# -- the wheelhouse ----------------------------------------------------------------------------


def build_wheelhouse(log: Path) -> Path:
    """Wheels of dockd's dependencies and build requirements, for an offline guest.

    Build requirements too: `pip install <checkout>` (packaging/install.sh)
    builds dockd in an isolated environment that needs setuptools>=68 and
    wheel, and with --no-index they must come from the same folder. The
    recipe that README.md and install.sh give for WHEELHOUSE, `pip wheel -w
    dir .`, leaves them out, and the offline install then fails with "No
    matching distribution found for setuptools>=68".
    """
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps: list[str] = meta["project"]["dependencies"]
    build: list[str] = meta["build-system"]["requires"]
    key = _digest(json.dumps(deps), json.dumps(build), sys.version.split()[0])
    folder = cache_root() / f"wheels-{key}"
    if (folder / "done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for old in cache_root().glob("wheels-*"):
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check"]
    _log_run([*pip, "-w", str(folder), *deps, *build], log, timeout=900)
    (folder / "done").touch()
    return folder


# -- the installed layer ---------------------------------------------------------------------


def checkout_files() -> list[str]:
    """The working tree as git sees it: tracked and new files, not ignored, not deleted."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    names = {os.fsdecode(n) for n in out.split(b"\0") if n}
    # tests/ is no part of an install (and editing a test must not cost a re-install).
    return sorted(
        n for n in names if (REPO / n).is_file() and not n.startswith((".vm-cache/", "tests/"))
    )


# Runs on the host in a private mount namespace (unshare -m): whatever
# happens, the mounts and the loop device go away with the namespace.
_INSTALL_SCRIPT = r"""
set -eu
img=$1 mnt=$2 src=$3 wheels=$4
cleanup() { umount "$mnt/proc" "$mnt/dev" "$mnt" 2>/dev/null || true; }
trap cleanup EXIT
mount -o loop "$img" "$mnt"
mount -t proc proc "$mnt/proc"
mount --bind /dev "$mnt/dev"
rm -rf "$mnt/root/dockd" "$mnt/root/wheelhouse"
cp -a "$src" "$mnt/root/dockd"
cp -a "$wheels" "$mnt/root/wheelhouse"
rm -f "$mnt/root/wheelhouse/done"
# mmdebstrap leaves /etc/machine-id empty, which makes every boot of a fresh
# overlay a "first boot" (systemd presets, a new id): a dock has one id.
echo 4b1d0c4e5f3a4b2c9d8e7f6a5b4c3d2e > "$mnt/etc/machine-id"
# The guest's own root, its python3 3.11.2 and pip: the venv is what the
# guest would have built itself. env -i: the host's PIP_* settings (its
# local index, constraints) must not leak in; the install is offline.
chroot "$mnt" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 sh -c 'cd /root/dockd && make install WHEELHOUSE=/root/wheelhouse'
# What an admin does next: the dock's settings (both are the defaults,
# written out so that the test does not depend on them staying so).
sed -i -e 's/^#workers = .*/workers = 2/' -e 's/^#mount_backend = .*/mount_backend = "kernel"/' \
    "$mnt/etc/dockd/dockd.toml"
grep -q '^workers = 2' "$mnt/etc/dockd/dockd.toml"
grep -q '^mount_backend = "kernel"' "$mnt/etc/dockd/dockd.toml"
"""


def _detach_loops(backing: Path) -> None:
    """No loop device may outlive the build (`mount -o loop` frees its own on umount)."""
    out = subprocess.run(
        ["losetup", "-j", str(backing), "-O", "NAME", "-n"], capture_output=True, text=True
    ).stdout
    for dev in out.split():
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def build_installed(base: BaseImage, wheelhouse: Path, log: Path) -> BaseImage:
    """The base with dockd installed by `make install` in a chroot (cached by checkout).

    Why a chroot and not the booted guest: under TCG the guest runs Python
    20-40x slower than the host, and pip (venv with ensurepip, ~25 wheels,
    building dockd from the checkout) took 220 s there against ~15 s here.
    It is the same command on the same root with the guest's own Python;
    what only a running systemd/udevd can show (daemon-reload, udev reload,
    `enable --now`) is the second `make install` that runs in the booted
    guest (DOCKD_SKIP_VENV=1, tests/vm/guest.py: provision).
    """
    files = checkout_files()
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode() + b"\0" + (REPO / name).read_bytes() + b"\0")
    key = _digest(str(base.root), wheelhouse.name, h.hexdigest(), _INSTALL_SCRIPT)
    folder = cache_root() / f"installed-{key}"
    image = BaseImage(folder / "root.img", base.kernel, base.initrd)
    if (folder / "done").exists():
        return image
    for old in cache_root().glob("installed-*"):
        shutil.rmtree(old, ignore_errors=True)
    folder.mkdir(parents=True)
    src = folder / "src"
    for name in files:
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    _log_run(["cp", "--sparse=always", str(base.root), str(image.root)], log, 300)
    mnt = folder / "mnt"
    mnt.mkdir()
    argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _INSTALL_SCRIPT, "sh"]
    try:
        _log_run([*argv, str(image.root), str(mnt), str(src), str(wheelhouse)], log, 900)
    finally:
        _detach_loops(image.root)
    shutil.rmtree(src)
    mnt.rmdir()
    (folder / "done").touch()
    return image


def overlay(backing: Path, dest: Path) -> Path:
    """A qcow2 overlay: the guest writes to `dest`; `backing` is never changed."""
    fmt = "raw" if backing.suffix == ".img" else "qcow2"
    dest.unlink(missing_ok=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(backing), "-F", fmt, str(dest)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return dest
