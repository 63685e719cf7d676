"""The VM suite (DESIGN §6, last bullet): dockd on a real systemd, udev and kernel.

Run by `make test-vm` (DOCKD_VM_TESTS=1), never by the main `make test`:
without that variable pytest does not even collect these files. Each test
is marked `vm`. The images are built once (tests/vm/image.py caches them in
`.vm-cache/`); a guest boots on a qcow2 overlay of the installed image, so
the cached image is never written, and every qemu started is killed when
the session ends (and with pytest, should pytest die first). The tests of
test_dock.py share one guest, to stay within 10 minutes; that module says
how they keep out of each other's way.

DOCKD_VM_ACCEL=kvm|tcg forces the accelerator (default: probe, tcg if KVM
cannot boot the guest kernel).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest

from tests.vm import image
from tests.vm.machine import Boot, Machine, pick_accel

ENABLE = "DOCKD_VM_TESTS"

if os.environ.get(ENABLE) != "1":
    # The main `pytest -q` (make test) leaves the VM suite out entirely.
    collect_ignore_glob = ["test_*.py"]

HOST_TOOLS = (
    "qemu-system-x86_64",
    "qemu-img",
    "mmdebstrap",
    "mkfs.ext4",
    "mkfs.vfat",
    "mcopy",
    "mdir",
    "ffmpeg",
    "unshare",
    "make",
    "git",
)

P = ParamSpec("P")
T = TypeVar("T")

# What the summary prints at the end: seconds per step and per test.
TIMINGS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm: boots a qemu guest with systemd (make test-vm)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.vm)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "tests/vm/" in report.nodeid:
        TIMINGS[f"test {report.nodeid.split('::')[-1]}"] = report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("vm timings (seconds)")
    for name, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{seconds:8.1f}  {name}")
    load = os.getloadavg()
    terminalreporter.write_line(f"host load average at the end: {load[0]:.1f} {load[1]:.1f}")


@dataclass
class VM:
    """The built images and a way to boot guests from them; every guest is killed at the end."""

    installed: image.BaseImage
    accel: str
    workdir: Path
    machines: list[Machine] = field(default_factory=list)

    def machine(self, name: str) -> Machine:
        """A new guest on a fresh overlay of the installed image (not started)."""
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        disk = image.overlay(self.installed.root, folder / "disk.qcow2")
        m = Machine(Boot(disk, self.installed.kernel, self.installed.initrd), folder, self.accel)
        self.machines.append(m)
        return m

    def boot(self, name: str) -> Machine:
        m = self.machine(name)
        m.start()
        TIMINGS[f"boot {name}"] = m.wait_ready()
        return m


def _timed(name: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    t0 = time.monotonic()
    result = fn(*args, **kwargs)
    TIMINGS[name] = time.monotonic() - t0
    return result


@pytest.fixture(scope="session")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VM]:
    # Asked for explicitly (DOCKD_VM_TESTS=1): a machine that cannot run the
    # suite is a failure, not a skip, or CI would pass having run nothing.
    missing = [t for t in HOST_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"VM tests need {', '.join(missing)} (make test-vm installs them: "
            "apt-get install qemu-system-x86 qemu-utils mmdebstrap mtools dosfstools ffmpeg)"
        )
    if os.geteuid() != 0:
        pytest.fail("VM tests need root (mmdebstrap --mode=root, loop mounts)")
    # One run at a time per cache: another run would replace the images that
    # this run's guests boot from (each build removes the older layers).
    lock = open(image.cache_root() / ".lock", "w")  # noqa: SIM115 (held for the session)
    t0 = time.monotonic()
    fcntl.flock(lock, fcntl.LOCK_EX)
    if time.monotonic() - t0 > 1:
        TIMINGS["waited for another run's .vm-cache lock"] = time.monotonic() - t0
    logs = tmp_path_factory.mktemp("vm-build")
    base = _timed(
        "image: base, mmdebstrap + mkfs (~0: from .vm-cache)", image.build_base, logs / "base.log"
    )
    wheels = _timed(
        "image: wheelhouse (~0: from .vm-cache)", image.build_wheelhouse, logs / "wheels.log"
    )
    installed = _timed(
        "image: make install in a chroot (~0: from .vm-cache)",
        image.build_installed,
        base,
        wheels,
        logs / "installed.log",
    )
    accel = pick_accel(base.kernel, base.initrd, logs / "accel-probe.log")
    TIMINGS[f"accelerator: {accel}"] = 0.0
    env = VM(installed, accel, tmp_path_factory.mktemp("vm"))
    try:
        yield env
    finally:
        for m in env.machines:
            m.kill()
        lock.close()
