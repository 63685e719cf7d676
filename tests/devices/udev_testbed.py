"""umockdev testbeds for tests: fake USB cameras that real libudev and pyudev see.

Why it is built this way (each point was tried):

- A `UMockdev.Testbed` works only in a process that runs under
  `umockdev-wrapper` (which preloads libumockdev-preload): elsewhere
  `add_device` checks a parent against the real /sys and fails. pytest does
  not run under the wrapper, so the testbed lives in a helper process: this
  file run as a script under the wrapper, driven by JSON lines on its
  stdin/stdout (`UdevTestbed` below is the driving end).
- The code under test runs in a child of its own, also under the wrapper,
  with `UMOCKDEV_DIR=<the testbed's root>` in its environment
  (`UdevTestbed.env()` and `.wrap()`): it then sees the testbed's /sys and
  udev database, and receives the uevents the helper sends, through the
  preload library's emulated netlink socket. The variable must be passed
  explicitly: the helper's C library sets it, Python's os.environ there
  does not show it.
- `add_device` itself sends the `add` uevent; `uevent(path, "add")` sends a
  duplicate. Unplugging sends `remove` for the children first, then the
  device, and only then removes them from the fake /sys (a uevent for a
  device no longer in /sys cannot be sent), as the kernel does.
- A camera's DEVNAME may name a real loop device so that the code under test
  can mount what it was told about. Create it with `losetup` in the test
  process (tests/volumes.py `loop_device`), never in a wrapped process: the
  preload library redirects /dev and /sys lookups there.

Usage:

    with udev_testbed() as tb:
        cam = tb.add_camera("CAM00001", port=1, devnode="/dev/loop3")
        with JsonLinesProcess(tb.wrap([sys.executable, "-m", "x"]), env=tb.env()) as sut:
            ...
            tb.unplug(cam)
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

REPO = Path(__file__).resolve().parents[2]
# Environment variables that would make a child see a different (or no) testbed.
_UMOCKDEV_VARS = ("LD_PRELOAD", "UMOCKDEV_DIR")


def umockdev_missing() -> str | None:
    """Why umockdev tests cannot run here (for pytest.skip), or None if they can."""
    if shutil.which("umockdev-wrapper") is None:
        return "umockdev-wrapper not installed (Debian package umockdev)"
    try:
        import gi

        gi.require_version("UMockdev", "1.0")
        from gi.repository import UMockdev  # noqa: F401
    except (ImportError, ValueError) as exc:
        return f"umockdev's GObject bindings are missing ({exc}): gir1.2-umockdev-1.0, PyGObject"
    return None


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: os.environ) without any umockdev variables."""
    env = dict(os.environ if base is None else base)
    for name in _UMOCKDEV_VARS:
        env.pop(name, None)
    return env


class JsonLinesProcess:
    """A child process that talks JSON, one object per line, on stdin/stdout.

    stdout is read by a thread into a queue, so that `recv` can time out; the
    child's stderr goes to a file that every error message quotes.
    """

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: Path = REPO,
    ) -> None:
        self.argv = list(argv)
        # Lives as long as the child; closed in close().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", errors="replace")

    def send(self, obj: Mapping[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(obj) + "\n")
        stdin.flush()

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next object the child printed; AssertionError on timeout or exit."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"{self.argv[-1]}: nothing within {timeout} s; stderr:\n{self.stderr_text()}"
            ) from None
        if line is None:
            self._lines.put(None)  # stay at end of stream for later calls
            raise AssertionError(
                f"{self.argv[-1]} exited ({self.process.wait()}); stderr:\n{self.stderr_text()}"
            )
        try:
            return cast(dict[str, Any], json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{self.argv[-1]} printed non-JSON: {line!r}") from None

    def remaining(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Close stdin (the child's signal to finish), then every object up to its exit."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            stdin.close()
        out = []
        while True:
            try:
                out.append(self.recv(timeout))
            except AssertionError:
                if self.process.poll() is None:
                    raise
                return out

    def close(self, timeout: float = 10.0) -> int:
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # the child is gone already
                stdin.close()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(timeout)
        self._stderr.close()
        return code

    def __enter__(self) -> JsonLinesProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class MockCamera:
    """A fake docked camera: a USB device with a disk (and maybe a partition)."""

    serial: str
    usb: str  # sysfs path of the USB device
    disk: str  # sysfs path of the whole disk
    volume: str  # sysfs path of the block device holding the filesystem
    slot: str  # the USB device's ID_PATH: the expected DeviceIdentity.slot
    devnode: str


class UdevTestbed:
    """Drives a umockdev testbed held by a helper process (see the module doc)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        argv = ["umockdev-wrapper", sys.executable, str(Path(__file__).resolve())]
        self._helper = JsonLinesProcess(argv, env=clean_env())
        hello = self._helper.recv(timeout)
        self.root_dir: str = hello["root_dir"]
        self._disks = 0

    def _call(self, **request: Any) -> dict[str, Any]:
        self._helper.send(request)
        reply = self._helper.recv(self.timeout)
        if "error" in reply:
            raise AssertionError(f"umockdev helper: {reply['error']}")
        return reply

    def add_device(
        self,
        subsystem: str,
        name: str,
        parent: str | None,
        attrs: Mapping[str, str],
        props: Mapping[str, str],
    ) -> str:
        """Add a device (its `add` uevent is sent); returns its sysfs path."""
        reply = self._call(
            op="add",
            subsystem=subsystem,
            name=name,
            parent=parent,
            attrs=dict(attrs),
            props=dict(props),
        )
        return str(reply["sys_path"])

    def set_property(self, sys_path: str, name: str, value: str) -> None:
        self._call(op="set_property", sys_path=sys_path, name=name, value=value)

    def uevent(self, sys_path: str, action: str) -> None:
        self._call(op="uevent", sys_path=sys_path, action=action)

    def remove_device(self, sys_path: str) -> None:
        """Remove the device and its children from /sys, without a uevent."""
        self._call(op="remove", sys_path=sys_path)

    def add_camera(
        self,
        serial: str,
        *,
        port: int = 1,
        devnode: str = "/dev/null",
        fs_type: str = "vfat",
        partition: bool = True,
        vendor_id: str = "2a5f",
        model_id: str = "0101",
        vendor: str = "ACME",
        model: str = "BodyCam",
        fs_uuid: str = "1234-ABCD",
        fs_label: str = "",
        block_serial: str | None = None,
    ) -> MockCamera:
        """Plug a camera into USB port `port` (its `add` uevents are sent).

        Laid out as udevd would describe a USB mass-storage camera, except
        that the block device hangs directly below the USB device (the
        interface, SCSI host and target levels are left out: nothing that
        looks for the USB parent cares). By default the serial number is only
        in the USB device's sysfs `serial` attribute, not in the block
        device's ID_SERIAL_SHORT (`block_serial` adds it), so tests prove the
        fallback to the parent. `fs_type=""` makes a device with no
        filesystem (no medium).
        """
        usb_path = f"pci-0000:00:14.0-usb-0:{port}"
        usb = self.add_device(
            "usb",
            f"1-{port}",
            None,
            {
                "serial": serial,
                "idVendor": vendor_id,
                "idProduct": model_id,
                "manufacturer": vendor,
                "product": model,
            },
            {"DEVTYPE": "usb_device", "ID_PATH": usb_path, "BUSNUM": "001"},
        )
        self._disks += 1
        if self._disks > 25:
            raise AssertionError("add_camera names disks sdb…sdz: at most 25 per testbed")
        disk_name = "sd" + chr(ord("a") + self._disks)
        block_props = {
            "ID_BUS": "usb",
            "ID_PATH": f"{usb_path}:1.0-scsi-0:0:0:0",
            "ID_VENDOR_ID": vendor_id,
            "ID_MODEL_ID": model_id,
        }
        if block_serial is not None:
            block_props["ID_SERIAL_SHORT"] = block_serial
        fs_props = {"ID_FS_TYPE": fs_type, "ID_FS_USAGE": "filesystem", "ID_FS_UUID": fs_uuid}
        if fs_label:
            fs_props["ID_FS_LABEL"] = fs_label
        if not fs_type:
            fs_props = {}
        disk_props = {**block_props, "DEVTYPE": "disk"}
        disk_props["DEVNAME"] = f"/dev/{disk_name}" if partition else devnode
        if partition:
            disk_props["ID_PART_TABLE_TYPE"] = "dos"
        else:
            disk_props.update(fs_props)
        disk = self.add_device(
            "block", disk_name, usb, {"size": "81920", "removable": "1", "ro": "0"}, disk_props
        )
        volume = disk
        if partition:
            volume = self.add_device(
                "block",
                f"{disk_name}1",
                disk,
                {"size": "81792", "partition": "1", "start": "128", "ro": "0"},
                {**block_props, **fs_props, "DEVTYPE": "partition", "DEVNAME": devnode},
            )
        return MockCamera(serial, usb, disk, volume, usb_path, devnode)

    def unplug(self, camera: MockCamera) -> None:
        """`remove` uevents for partition, disk and USB device, then take them out of /sys."""
        for sys_path in dict.fromkeys((camera.volume, camera.disk, camera.usb)):
            self.uevent(sys_path, "remove")
        self.remove_device(camera.usb)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a process that is to see this testbed (run it with `wrap`)."""
        return {**clean_env(base), "UMOCKDEV_DIR": self.root_dir}

    @staticmethod
    def wrap(argv: Sequence[str]) -> list[str]:
        return ["umockdev-wrapper", *argv]

    def close(self) -> None:
        self._helper.close(self.timeout)
        # The helper removes its testbed when it ends cleanly; not if it was killed.
        shutil.rmtree(self.root_dir, ignore_errors=True)

    def __enter__(self) -> UdevTestbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def udev_testbed(timeout: float = 10.0) -> Iterator[UdevTestbed]:
    """A fresh testbed, closed afterwards; skips the test if umockdev is missing."""
    reason = umockdev_missing()
    if reason is not None:
        import pytest

        pytest.skip(reason)
    tb = UdevTestbed(timeout)
    try:
        yield tb
    finally:
        tb.close()


# -- the helper process (runs under umockdev-wrapper) ----------------------------------------


def _flatten(pairs: Mapping[str, str]) -> list[str]:
    return [item for key, value in pairs.items() for item in (key, value)]


def _serve() -> None:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    testbed = UMockdev.Testbed.new()

    def reply(obj: Mapping[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    reply({"root_dir": testbed.get_root_dir()})
    for line in sys.stdin:
        request = json.loads(line)
        op = request.get("op")
        try:
            if op == "add":
                sys_path = testbed.add_device(
                    request["subsystem"],
                    request["name"],
                    request["parent"],
                    _flatten(request["attrs"]),
                    _flatten(request["props"]),
                )
                if sys_path is None:
                    raise RuntimeError(f"add_device refused {request['name']!r} (see stderr)")
                reply({"sys_path": sys_path})
            elif op == "set_property":
                testbed.set_property(request["sys_path"], request["name"], request["value"])
                reply({})
            elif op == "uevent":
                testbed.uevent(request["sys_path"], request["action"])
                reply({})
            elif op == "remove":
                testbed.remove_device(request["sys_path"])
                reply({})
            else:
                reply({"error": f"unknown op {op!r}"})
        except Exception as exc:
            reply({"error": f"{op}: {exc}"})
    del testbed  # its destructor removes the testbed's folder


if __name__ == "__main__":
    _serve()
