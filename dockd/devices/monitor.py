"""udev: which camera volumes are docked, and when they come and go.

Three layers, so that most of it is testable without udev:

- `identity_from_properties` (pure): udev properties of a block device and
  sysfs attributes of its USB parent -> `DeviceIdentity`, or `Ignored` with
  the reason it is not a camera volume.
- `VolumeTracker` (pure state): turns a stream of "this sys_path now shows
  this identity (or nothing)" into `DockEvent`s, so that duplicate `add`
  uevents, `change` events and removals with few properties come out as one
  clean add ... remove pair per volume.
- `UdevMonitor`: pyudev's netlink monitor on subsystem "block" in a thread
  of its own, feeding the tracker and calling back with each `DockEvent`.

The udev properties used are those of systemd-udevd's built-ins (usb_id,
path_id, blkid): ID_SERIAL_SHORT, ID_VENDOR_ID, ID_MODEL_ID, ID_VENDOR,
ID_MODEL, ID_PATH, ID_FS_TYPE, ID_FS_UUID, ID_FS_LABEL, ID_PART_TABLE_TYPE,
ID_BUS; DEVNAME and DEVTYPE come from the kernel's uevent.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyudev
import structlog

from dockd.config import DevicesConfig
from dockd.devices.identity import DeviceIdentity, DockEvent

log = structlog.get_logger("dockd.devices")

# sysfs attributes of the USB device that stand in for missing udev properties.
USB_ATTRIBUTES = ("serial", "idVendor", "idProduct", "manufacturer", "product")

# Identity strings come from the camera's firmware: hostile media. Control
# characters are dropped and the length is capped before they reach logs,
# the catalog or a path.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_FIELD = 128
# "pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0" -> "pci-0000:00:14.0-usb-0:2:1.0"
_SCSI_TAIL = re.compile(r"-scsi-.*$")


@dataclass(frozen=True)
class Ignored:
    """A block device that is not a camera volume dockd takes, and why.

    `quiet` marks devices that are plainly not cameras (internal disks, loop
    devices, a disk whose partitions are the volumes): those are logged at
    debug level only, so that the journal is not filled at every start-up.
    """

    reason: str
    quiet: bool = False
    serial: str = ""
    slot: str = ""
    devnode: str = ""


def _clean(text: str | None) -> str:
    if not text:
        return ""
    return _CONTROL.sub("", text).strip()[:_MAX_FIELD]


def _first(*values: str | None) -> str:
    for value in values:
        cleaned = _clean(value)
        if cleaned:
            return cleaned
    return ""


def slot_from_paths(usb_id_path: str, block_id_path: str, usb_sys_name: str) -> str:
    """The dock slot: the USB device's ID_PATH, else the block device's ID_PATH
    without its "-scsi-…" tail (which names the LUN, not the socket), else the
    USB device's sysfs name (e.g. "1-2", also per physical port)."""
    if usb_id_path:
        return usb_id_path
    if block_id_path:
        return _SCSI_TAIL.sub("", block_id_path)
    return usb_sys_name


def identity_from_properties(
    props: Mapping[str, str],
    usb_attrs: Mapping[str, str] | None,
    config: DevicesConfig,
    *,
    usb_props: Mapping[str, str] | None = None,
    usb_sys_name: str = "",
    sys_path: str = "",
    has_partitions: bool | None = None,
) -> DeviceIdentity | Ignored:
    """Decide whether a block device is a camera volume, and describe it.

    `props` are the block device's udev properties; `usb_attrs` the sysfs
    attributes (decoded, see USB_ATTRIBUTES) of its USB parent device, None
    when it has no USB parent; `usb_props` that parent's udev properties (for
    its ID_PATH) and `usb_sys_name` its sysfs name. `sys_path` defaults to
    /sys + DEVPATH. `has_partitions` says whether a whole disk has partition
    devices; None means "judge by ID_PART_TABLE_TYPE".

    A volume is a partition with a filesystem, or a whole disk that carries a
    filesystem itself (cameras that present "superfloppy" storage). Not
    volumes: devices that are not USB (when `usb_only`), a whole disk with
    partitions, anything without a filesystem or with one not in
    `config.filesystems` (e.g. the iso9660 "driver CD" some cameras also
    present), and devices with no serial number, which could not be told
    apart from other cameras of the same model.
    """
    devnode = _clean(props.get("DEVNAME"))
    devtype = props.get("DEVTYPE", "")
    is_usb = usb_attrs is not None or props.get("ID_BUS") == "usb"
    if config.usb_only and not is_usb:
        return Ignored("not a USB device", quiet=True, devnode=devnode)
    attrs = usb_attrs or {}
    serial = _first(props.get("ID_SERIAL_SHORT"), attrs.get("serial"))
    slot = _clean(
        slot_from_paths(
            (usb_props or {}).get("ID_PATH", ""), props.get("ID_PATH", ""), usb_sys_name
        )
    )
    fs_type = _clean(props.get("ID_FS_TYPE"))

    def ignored(reason: str, quiet: bool = False) -> Ignored:
        return Ignored(reason, quiet, serial=serial, slot=slot, devnode=devnode)

    if devtype not in ("disk", "partition"):
        return ignored(f"not a disk or partition (DEVTYPE={devtype!r})", quiet=True)
    if not devnode:
        return ignored("udev gave no device node (DEVNAME)", quiet=True)
    if devtype == "disk" and not fs_type:
        partitioned = (
            has_partitions if has_partitions is not None else bool(props.get("ID_PART_TABLE_TYPE"))
        )
        if partitioned:
            return ignored(
                "whole disk with a partition table: its partitions are the volumes", True
            )
    if devtype == "disk" and fs_type and has_partitions:
        # blkid can see both a FAT boot sector and an MBR in the same sector;
        # real partition devices decide that the partitions are the volumes.
        return ignored("whole disk with partitions: its partitions are the volumes", True)
    if not fs_type:
        return ignored("no filesystem found (no medium, or not formatted)")
    if fs_type not in config.filesystems:
        return ignored(f"filesystem {fs_type} is not in devices.filesystems")
    if not serial:
        return ignored("no serial number: the camera cannot be told apart from others")
    if not slot:
        return ignored("cannot tell which dock slot it is in (no ID_PATH)")
    return DeviceIdentity(
        serial=serial,
        slot=slot,
        devnode=devnode,
        sys_path=sys_path or "/sys" + props.get("DEVPATH", ""),
        fs_type=fs_type,
        vendor_id=_first(props.get("ID_VENDOR_ID"), attrs.get("idVendor")),
        model_id=_first(props.get("ID_MODEL_ID"), attrs.get("idProduct")),
        vendor=_first(props.get("ID_VENDOR"), attrs.get("manufacturer")),
        model=_first(props.get("ID_MODEL"), attrs.get("product")),
        fs_uuid=_clean(props.get("ID_FS_UUID")),
        fs_label=_clean(props.get("ID_FS_LABEL")),
    )


def _usb_attributes(usb: Any) -> dict[str, str]:
    """Decoded sysfs attributes of a pyudev USB device (pyudev returns bytes)."""
    out: dict[str, str] = {}
    for name in USB_ATTRIBUTES:
        try:
            value = usb.attributes.get(name)
        except (OSError, KeyError):  # pragma: no cover - attribute vanished mid-read
            value = None
        if isinstance(value, bytes):
            out[name] = value.decode("utf-8", errors="replace")
        elif isinstance(value, str):  # pragma: no cover - older pyudev
            out[name] = value
    return out


def classify_device(device: pyudev.Device, config: DevicesConfig) -> DeviceIdentity | Ignored:
    """`identity_from_properties` for a pyudev.Device (reads udev and sysfs)."""
    try:
        if device.subsystem != "block":
            return Ignored(f"not a block device ({device.subsystem})", quiet=True)
        props = {str(k): str(device.properties[k]) for k in device.properties}
        usb = device.find_parent("usb", "usb_device")
        usb_attrs = _usb_attributes(usb) if usb is not None else None
        usb_props = {str(k): str(usb.properties[k]) for k in usb.properties} if usb else None
        has_partitions = None
        if device.device_type == "disk":
            has_partitions = any(
                child.device_type == "partition" for child in device.children if child != device
            )
        return identity_from_properties(
            props,
            usb_attrs,
            config,
            usb_props=usb_props,
            usb_sys_name=usb.sys_name if usb is not None else "",
            sys_path=device.sys_path,
            has_partitions=has_partitions,
        )
    except (OSError, LookupError, pyudev.DeviceNotFoundError) as exc:
        # The device went away while we read it; its remove event follows.
        return Ignored(f"vanished while being read ({exc})")


def _log_ignored(ignored: Ignored) -> None:
    emit = log.debug if ignored.quiet else log.info
    emit(
        "dock.ignored",
        reason=ignored.reason,
        serial=ignored.serial,
        slot=ignored.slot,
        devnode=ignored.devnode,
    )


def identity_from_device(device: pyudev.Device, config: DevicesConfig) -> DeviceIdentity | None:
    """The camera volume a pyudev block device is, or None (logged as dock.ignored)."""
    result = classify_device(device, config)
    if isinstance(result, Ignored):
        _log_ignored(result)
        return None
    return result


class VolumeTracker:
    """Which camera volumes are present, by sys_path; emits the changes.

    `update(sys_path, identity)` says what a device shows now (None: nothing,
    or gone) and returns the DockEvents that bring a consumer from the old
    state to the new one:

    - same identity as before (a duplicate `add`, a `change` that changed
      nothing dockd cares about): no events;
    - new volume: `add`;
    - volume gone (`remove`, or a `change` that took the filesystem away, as
      when a card is pulled from a reader): `remove` with the identity it was
      added with, since udev sends little on removal and sysfs is gone;
    - different identity on the same sys_path (reformatted, a new card):
      `remove` of the old, then `add` of the new.

    So a consumer sees strictly alternating add/remove per sys_path and never
    has to dedupe. Thread-safe.
    """

    def __init__(self) -> None:
        self._present: dict[str, DeviceIdentity] = {}
        self._lock = threading.Lock()

    def update(self, sys_path: str, identity: DeviceIdentity | None) -> list[DockEvent]:
        with self._lock:
            old = self._present.get(sys_path)
            if old == identity:
                return []
            events: list[DockEvent] = []
            if old is not None:
                del self._present[sys_path]
                events.append(DockEvent("remove", old))
            if identity is not None:
                self._present[sys_path] = identity
                events.append(DockEvent("add", identity))
            return events

    def resync(self, current: Iterable[DeviceIdentity]) -> list[DockEvent]:
        """Events that make the tracked state equal to `current` (a fresh enumeration)."""
        now = {identity.sys_path: identity for identity in current}
        events: list[DockEvent] = []
        for sys_path in sorted(set(self.present()) - set(now)):
            events += self.update(sys_path, None)
        for sys_path, identity in now.items():
            events += self.update(sys_path, identity)
        return events

    def present(self) -> dict[str, DeviceIdentity]:
        with self._lock:
            return dict(self._present)


Callback = Callable[[DockEvent], None]


class UdevMonitor:
    """Delivers camera volumes' DockEvents to `callback`, from its own thread.

    `start()` opens the netlink socket first and then, in the thread,
    enumerates the volumes already docked (cameras docked before the daemon
    started) and delivers an `add` for each, before any uevent. So nothing
    docked in between is missed, and all callbacks come from one thread, in
    order. Duplicate uevents are dropped by a VolumeTracker: the consumer
    sees one `add` and one `remove` per volume (see VolumeTracker for
    `change`). If the kernel dropped uevents (the socket's buffer overflowed),
    the monitor re-enumerates and delivers the difference.

    `callback` must not block for long (hand work to a queue); an exception
    in it is logged (`dock.callback_failed`) and does not stop the monitor.
    """

    def __init__(
        self,
        config: DevicesConfig,
        callback: Callback,
        context: pyudev.Context | None = None,
    ) -> None:
        self.config = config
        self.callback = callback
        self.context = context if context is not None else pyudev.Context()
        self.tracker = VolumeTracker()
        self._monitor: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r = -1
        self._wake_w = -1

    def existing(self) -> list[DeviceIdentity]:
        """Camera volumes present now, by enumerating udev's database."""
        found = []
        for device in self.context.list_devices(subsystem="block"):
            identity = identity_from_device(device, self.config)
            if identity is not None:
                found.append(identity)
        return found

    def start(self) -> None:
        """Listen for uevents and start delivering events (existing volumes first)."""
        if self._thread is not None:
            raise RuntimeError("UdevMonitor already started")
        monitor = pyudev.Monitor.from_netlink(self.context)
        monitor.filter_by("block")
        monitor.start()
        self._monitor = monitor
        self._stop.clear()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="dockd-udev", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for it; safe to call twice or before start."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        # A full pipe (OSError) means the thread is being woken anyway.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover - a callback that never returns
            log.warning("dock.monitor_stuck", timeout=timeout)
            return
        self._thread = None
        self._monitor = None
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1

    def __enter__(self) -> UdevMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the thread ----------------------------------------------------------------

    def _run(self) -> None:
        self._deliver(self.tracker.resync(self._existing_or_none()))
        poller = select.poll()
        poller.register(self._monitor.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stop.is_set():
            ready = {fd for fd, _ in poller.poll()}
            if self._wake_r in ready or self._stop.is_set():
                break
            self._drain()

    def _existing_or_none(self) -> list[DeviceIdentity]:
        try:
            return self.existing()
        except Exception:  # pragma: no cover - udev database unreadable
            log.exception("dock.enumerate_failed")
            return []

    def _drain(self) -> None:
        """Handle every uevent queued on the socket."""
        while not self._stop.is_set():
            try:
                device = self._monitor.poll(timeout=0)
            except OSError as exc:
                # ENOBUFS: the kernel dropped uevents. Whatever they said,
                # a fresh enumeration tells the present state.
                log.warning("dock.monitor_error", error=str(exc))
                self._deliver(self.tracker.resync(self._existing_or_none()))
                return
            if device is None:
                return
            try:
                self._handle(device)
            except Exception:  # pragma: no cover - a bug must not end udev monitoring
                log.exception("dock.event_failed", sys_path=str(device.sys_path))

    def _handle(self, device: pyudev.Device) -> None:
        action = device.action
        sys_path = str(device.sys_path)
        if action == "remove":
            self._deliver(self.tracker.update(sys_path, None))
            return
        if action not in ("add", "change"):
            return
        result = classify_device(device, self.config)
        if isinstance(result, Ignored):
            if sys_path not in self.tracker.present():
                _log_ignored(result)
            # A `change` that made a known volume unusable (medium pulled,
            # filesystem wiped) ends it; for unknown devices this is a no-op.
            self._deliver(self.tracker.update(sys_path, None))
            return
        self._deliver(self.tracker.update(sys_path, result))

    def _deliver(self, events: list[DockEvent]) -> None:
        for event in events:
            identity = event.identity
            name = "dock.detected" if event.action == "add" else "dock.removed"
            log.info(
                name,
                serial=identity.serial,
                slot=identity.slot,
                devnode=identity.devnode,
                fs_type=identity.fs_type,
            )
            try:
                self.callback(event)
            except Exception:
                log.exception(
                    "dock.callback_failed",
                    action=event.action,
                    serial=identity.serial,
                    slot=identity.slot,
                    devnode=identity.devnode,
                )
