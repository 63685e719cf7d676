"""udev: which block devices are camera volumes, and their add/remove events.

The parsing and the add/remove bookkeeping are pure and tested on plain
mappings. UdevMonitor itself is tested against real libudev and pyudev on a
umockdev testbed (tests/devices/udev_testbed.py): this module doubles as the
watcher process that runs under umockdev-wrapper (`python -m
tests.devices.test_monitor`, see `_watch`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dockd.config import DevicesConfig
from dockd.devices.identity import DeviceIdentity, DockEvent
from dockd.devices.monitor import (
    Ignored,
    UdevMonitor,
    VolumeTracker,
    identity_from_properties,
    slot_from_paths,
)
from dockd.devices.mount import Mounter
from tests.devices.udev_testbed import JsonLinesProcess, UdevTestbed, udev_testbed
from tests.volumes import FAT_TOOLS, fat_put, loop_device, make_fat32_image, needs_root_fuse

CONFIG = DevicesConfig()
USB_PATH = "pci-0000:00:14.0-usb-0:2"
BLOCK_PATH = "pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0"

# A partition as systemd-udevd describes a USB camera's storage.
PARTITION = {
    "DEVNAME": "/dev/sdb1",
    "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/host6/target6:0:0/"
    "6:0:0:0/block/sdb/sdb1",
    "DEVTYPE": "partition",
    "SUBSYSTEM": "block",
    "ID_BUS": "usb",
    "ID_PATH": BLOCK_PATH,
    "ID_SERIAL_SHORT": "0123456789AB",
    "ID_VENDOR_ID": "2a5f",
    "ID_MODEL_ID": "0c01",
    "ID_VENDOR": "ACME",
    "ID_MODEL": "BodyCam_X1",
    "ID_FS_TYPE": "vfat",
    "ID_FS_UUID": "1A2B-3C4D",
    "ID_FS_LABEL": "DSJ",
}
USB_ATTRS = {
    "serial": "USBSERIAL01",
    "idVendor": "2a5f",
    "idProduct": "0c01",
    "manufacturer": "Acme Corp",
    "product": "Body Camera X1",
}
USB_PROPS = {"ID_PATH": USB_PATH}


def identify(
    props: Mapping[str, str],
    usb_attrs: Mapping[str, str] | None = USB_ATTRS,
    config: DevicesConfig = CONFIG,
    **kwargs: Any,
) -> DeviceIdentity | Ignored:
    kwargs.setdefault("usb_props", USB_PROPS)
    kwargs.setdefault("usb_sys_name", "1-2")
    return identity_from_properties(props, usb_attrs, config, **kwargs)


def without(mapping: Mapping[str, str], *keys: str) -> dict[str, str]:
    return {k: v for k, v in mapping.items() if k not in keys}


# -- identity_from_properties -------------------------------------------------------------


def test_partition_identity_from_udev_properties() -> None:
    assert identify(PARTITION) == DeviceIdentity(
        serial="0123456789AB",
        slot=USB_PATH,
        devnode="/dev/sdb1",
        sys_path="/sys" + PARTITION["DEVPATH"],
        fs_type="vfat",
        vendor_id="2a5f",
        model_id="0c01",
        vendor="ACME",
        model="BodyCam_X1",
        fs_uuid="1A2B-3C4D",
        fs_label="DSJ",
    )


def test_missing_properties_fall_back_to_the_usb_parents_attributes() -> None:
    props = without(
        PARTITION, "ID_SERIAL_SHORT", "ID_VENDOR_ID", "ID_MODEL_ID", "ID_VENDOR", "ID_MODEL"
    )
    got = identify(props, sys_path="/sys/x")
    assert isinstance(got, DeviceIdentity)
    assert (got.serial, got.vendor_id, got.model_id, got.vendor, got.model) == (
        "USBSERIAL01",
        "2a5f",
        "0c01",
        "Acme Corp",
        "Body Camera X1",
    )
    assert got.sys_path == "/sys/x"


@pytest.mark.parametrize(
    ("usb_id_path", "block_id_path", "usb_sys_name", "slot"),
    [
        (USB_PATH, BLOCK_PATH, "1-2", USB_PATH),
        ("", BLOCK_PATH, "1-2", "pci-0000:00:14.0-usb-0:2:1.0"),  # the LUN part cut off
        ("", "platform-xhci-hcd.1.auto-usb-0:1:1.0", "1-1", "platform-xhci-hcd.1.auto-usb-0:1:1.0"),
        ("", "", "1-2", "1-2"),
        ("", "", "", ""),
    ],
)
def test_slot_fallbacks(usb_id_path: str, block_id_path: str, usb_sys_name: str, slot: str) -> None:
    assert slot_from_paths(usb_id_path, block_id_path, usb_sys_name) == slot


def test_slot_from_block_id_path_when_the_usb_device_has_none() -> None:
    got = identify(PARTITION, usb_props={})
    assert isinstance(got, DeviceIdentity)
    assert got.slot == "pci-0000:00:14.0-usb-0:2:1.0"


def test_superfloppy_disk_is_a_volume() -> None:
    """Many cameras present a whole disk with a FAT filesystem and no partition table."""
    disk = {**PARTITION, "DEVTYPE": "disk", "DEVNAME": "/dev/sdb"}
    got = identify(disk, has_partitions=False)
    assert isinstance(got, DeviceIdentity)
    assert got.devnode == "/dev/sdb"
    # blkid may also see an MBR in a FAT boot sector: the filesystem wins unless
    # real partition devices exist.
    both = {**disk, "ID_PART_TABLE_TYPE": "dos"}
    assert isinstance(identify(both), DeviceIdentity)
    ignored = identify(both, has_partitions=True)
    assert isinstance(ignored, Ignored) and ignored.quiet


@pytest.mark.parametrize(
    ("props", "kwargs", "reason", "quiet"),
    [
        (
            {**without(PARTITION, "ID_FS_TYPE"), "DEVTYPE": "disk", "ID_PART_TABLE_TYPE": "dos"},
            {},
            "partition table",
            True,
        ),
        (
            {**without(PARTITION, "ID_FS_TYPE"), "DEVTYPE": "disk"},
            {"has_partitions": True},
            "partition table",
            True,
        ),
        (without(PARTITION, "ID_FS_TYPE"), {}, "no filesystem", False),
        (
            {**PARTITION, "ID_FS_TYPE": "iso9660"},
            {},
            "iso9660 is not in devices.filesystems",
            False,
        ),
        ({**PARTITION, "ID_FS_TYPE": "ntfs"}, {}, "ntfs", False),
        (without(PARTITION, "ID_SERIAL_SHORT"), {"usb_attrs": {}}, "no serial", False),
        (
            without(PARTITION, "ID_BUS"),
            {"usb_attrs": None, "usb_props": None},
            "not a USB device",
            True,
        ),
        (without(PARTITION, "DEVTYPE"), {}, "not a disk or partition", True),
        (without(PARTITION, "DEVNAME"), {}, "no device node", True),
        (without(PARTITION, "ID_PATH"), {"usb_props": {}, "usb_sys_name": ""}, "slot", False),
    ],
)
def test_what_is_not_a_camera_volume(
    props: dict[str, str], kwargs: dict[str, Any], reason: str, quiet: bool
) -> None:
    got = identify(props, **kwargs)
    assert isinstance(got, Ignored)
    assert reason in got.reason
    assert got.quiet is quiet


def test_ignored_devices_still_say_which_camera_they_were() -> None:
    """dock.ignored is logged with serial, slot and devnode, so an officer can be told."""
    got = identify({**PARTITION, "ID_FS_TYPE": "ntfs"})
    assert isinstance(got, Ignored)
    assert (got.serial, got.slot, got.devnode) == ("0123456789AB", USB_PATH, "/dev/sdb1")


def test_non_usb_devices_when_usb_only_is_off() -> None:
    """A dock's built-in SD reader: no USB parent, the block device's own serial and path."""
    sd = {
        "DEVNAME": "/dev/mmcblk0p1",
        "DEVTYPE": "partition",
        "DEVPATH": "/devices/platform/mmc0/block/mmcblk0/mmcblk0p1",
        "ID_PATH": "platform-fe320000.mmc",
        "ID_SERIAL_SHORT": "0x1234abcd",
        "ID_FS_TYPE": "exfat",
    }
    config = DevicesConfig(usb_only=False)
    got = identify(sd, usb_attrs=None, config=config, usb_props=None, usb_sys_name="")
    assert isinstance(got, DeviceIdentity)
    assert (got.slot, got.serial, got.fs_type) == ("platform-fe320000.mmc", "0x1234abcd", "exfat")
    assert isinstance(identify(sd, usb_attrs=None, usb_props=None, usb_sys_name=""), Ignored)


def test_firmware_strings_are_cleaned() -> None:
    """Invariant 6: control characters and absurd lengths from the camera go no further."""
    props = {**PARTITION, "ID_SERIAL_SHORT": " AB\x1b[31mC\n ", "ID_MODEL": "M" * 1000}
    got = identify(props)
    assert isinstance(got, DeviceIdentity)
    assert got.serial == "AB[31mC"
    assert got.model == "M" * 128
    # A serial of only control characters is no serial: the USB attribute is used.
    got = identify({**PARTITION, "ID_SERIAL_SHORT": "\x00\x01"})
    assert isinstance(got, DeviceIdentity) and got.serial == "USBSERIAL01"


# -- VolumeTracker -------------------------------------------------------------------------


def ident(sys_path: str = "/sys/a", **changes: str) -> DeviceIdentity:
    base = DeviceIdentity("SER", "slot1", "/dev/sdb1", sys_path, "vfat")
    return dataclasses.replace(base, **changes)


def test_tracker_turns_uevents_into_clean_add_remove_pairs() -> None:
    """Invariant 4 (idempotent docking) starts here: one add per docking."""
    tracker = VolumeTracker()
    a = ident()
    assert tracker.update(a.sys_path, a) == [DockEvent("add", a)]
    assert tracker.update(a.sys_path, a) == []  # duplicate add, or a change that changed nothing
    assert tracker.present() == {a.sys_path: a}
    # Remove events may carry nothing: the identity it was added with is reported.
    assert tracker.update(a.sys_path, None) == [DockEvent("remove", a)]
    assert tracker.update(a.sys_path, None) == []  # a second remove, or an unknown device
    assert tracker.present() == {}


def test_tracker_reports_a_changed_volume_as_remove_then_add() -> None:
    tracker = VolumeTracker()
    old, new = ident(fs_uuid="1111-1111"), ident(fs_uuid="2222-2222")
    tracker.update(old.sys_path, old)
    assert tracker.update(new.sys_path, new) == [DockEvent("remove", old), DockEvent("add", new)]


def test_tracker_resync_brings_state_to_a_fresh_enumeration() -> None:
    tracker = VolumeTracker()
    a, b, c = ident("/sys/a"), ident("/sys/b", serial="B"), ident("/sys/c", serial="C")
    tracker.update(a.sys_path, a)
    tracker.update(b.sys_path, b)
    events = tracker.resync([b, c])
    assert events == [DockEvent("remove", a), DockEvent("add", c)]
    assert tracker.resync([b, c]) == []


# -- UdevMonitor on a umockdev testbed -----------------------------------------------------


def _watch() -> None:
    """The watcher process (under umockdev-wrapper): UdevMonitor's events as JSON lines.

    Prints {"existing": [...]} and {"ready": true} once the netlink socket is
    open, then one {"action": ..., <identity>} per DockEvent; on EOF on stdin
    it stops the monitor and prints {"stopped": <thread joined>}. Logs go to
    stderr as JSON.
    """
    from dockd.logs import configure

    configure(level="debug", fmt="json")
    lock = threading.Lock()

    def out(obj: Mapping[str, Any]) -> None:
        with lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    monitor = UdevMonitor(
        DevicesConfig(), lambda ev: out({"action": ev.action, **ev.identity.as_json()})
    )
    out({"existing": [identity.as_json() for identity in monitor.existing()]})
    monitor.start()
    out({"ready": True})
    sys.stdin.read()
    monitor.stop()
    out({"stopped": monitor._thread is None})


def start_watcher(tb: UdevTestbed) -> JsonLinesProcess:
    return JsonLinesProcess(
        tb.wrap([sys.executable, "-m", "tests.devices.test_monitor"]), env=tb.env()
    )


def log_events(stderr: str) -> list[dict[str, Any]]:
    events = []
    for line in stderr.splitlines():
        with contextlib.suppress(json.JSONDecodeError):  # a stray non-log line
            events.append(json.loads(line))
    return events


def test_monitor_sees_docked_cameras_come_and_go_once_each() -> None:
    """A camera docked before start-up is found; duplicates and non-cameras make no event;
    a remove carries the identity of the add (USB parent's serial, the dock slot)."""
    with udev_testbed() as tb:
        early = tb.add_camera("EARLY001", port=1, devnode="/dev/sdb1")
        with start_watcher(tb) as sut:
            existing = sut.recv()["existing"]
            assert [(e["serial"], e["slot"], e["devnode"]) for e in existing] == [
                ("EARLY001", early.slot, "/dev/sdb1")
            ]
            first = [sut.recv(), sut.recv()]  # "ready" and the start-up add, either order
            assert {"ready": True} in first
            [start_add] = [m for m in first if m != {"ready": True}]
            assert start_add == {"action": "add", **existing[0]}

            cam = tb.add_camera("CAM00002", port=2, devnode="/dev/sdc1", fs_label="DSJ")
            added = sut.recv()
            assert (added["action"], added["serial"], added["slot"]) == (
                "add",
                "CAM00002",
                cam.slot,
            )
            assert added["sys_path"] == cam.volume
            assert (added["fs_type"], added["fs_label"], added["vendor"]) == ("vfat", "DSJ", "ACME")

            tb.uevent(cam.volume, "add")  # duplicate: must yield nothing
            tb.uevent(cam.disk, "change")  # the partitioned disk itself is no volume
            tb.add_camera("CDROM003", port=3, fs_type="iso9660", partition=False)
            tb.add_camera("NOMEDIA4", port=4, fs_type="", partition=False)
            tb.unplug(cam)
            # Had anything above made an event, it would come before this remove.
            assert sut.recv() == {**added, "action": "remove"}

            tb.unplug(early)
            assert sut.recv() == {**start_add, "action": "remove"}
            assert sut.remaining() == [{"stopped": True}]
            logs = log_events(sut.stderr_text())
    detected = [e for e in logs if e["event"] == "dock.detected"]
    assert [(e["serial"], e["slot"], e["devnode"]) for e in detected] == [
        ("EARLY001", early.slot, "/dev/sdb1"),
        ("CAM00002", cam.slot, "/dev/sdc1"),
    ]
    assert [e["serial"] for e in logs if e["event"] == "dock.removed"] == ["CAM00002", "EARLY001"]
    ignored = {e["serial"]: e["reason"] for e in logs if e["event"] == "dock.ignored"}
    assert "iso9660" in ignored["CDROM003"]
    assert "no filesystem" in ignored["NOMEDIA4"]


def test_a_change_event_that_brings_a_filesystem_is_an_add() -> None:
    """A card reader or camera that shows its medium late: `change` with ID_FS_TYPE."""
    with udev_testbed() as tb, start_watcher(tb) as sut:
        assert sut.recv() == {"existing": []}
        assert sut.recv() == {"ready": True}
        cam = tb.add_camera("LATE0001", port=1, devnode="/dev/sdb", fs_type="", partition=False)
        tb.set_property(cam.volume, "ID_FS_TYPE", "exfat")
        tb.uevent(cam.volume, "change")
        added = sut.recv()
        assert (added["action"], added["serial"], added["fs_type"]) == ("add", "LATE0001", "exfat")
        tb.uevent(cam.volume, "change")  # nothing new
        tb.set_property(cam.volume, "ID_FS_TYPE", "")  # medium pulled
        tb.uevent(cam.volume, "change")
        assert sut.recv() == {**added, "action": "remove"}
        tb.unplug(cam)  # already gone: no second remove
        assert sut.remaining() == [{"stopped": True}]


@pytest.mark.root
@needs_root_fuse(*FAT_TOOLS, "losetup")
def test_a_detected_camera_mounts_from_the_devnode_udev_named(tmp_path: Path) -> None:
    """The chain the daemon runs: a uevent names a real loop device, and the
    identity it yields is enough to mount the camera's volume."""
    image = make_fat32_image(tmp_path / "cam.img", size_mib=40)
    fat_put(image, "DCIM/DSJ0001_20261125080000_0001.MP4", b"clip")
    # losetup here, in the unwrapped test process (see udev_testbed).
    with loop_device(image) as device, udev_testbed() as tb, start_watcher(tb) as sut:
        assert sut.recv() == {"existing": []}
        assert sut.recv() == {"ready": True}
        tb.add_camera("LOOPCAM1", port=3, devnode=device, partition=False)
        added = sut.recv()
        assert added["action"] == "add"
        cam = DeviceIdentity(**{k: v for k, v in added.items() if k != "action"})
        assert (cam.devnode, cam.serial, cam.fs_type) == (device, "LOOPCAM1", "vfat")
        with Mounter("fuse", tmp_path / "run", 15.0).mount(cam) as volume:
            assert (
                volume.path / "DCIM" / "DSJ0001_20261125080000_0001.MP4"
            ).read_bytes() == b"clip"
        assert sut.remaining() == [{"stopped": True}]


if __name__ == "__main__":
    _watch()
