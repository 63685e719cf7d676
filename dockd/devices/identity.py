"""Values that describe a docked camera; they cross from devices/ to the daemon.

Pure data: udev parsing lives in monitor.py, mounting in mount.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from dockd.errors import ConfigError


@dataclass(frozen=True)
class DeviceIdentity:
    """A camera's storage volume as udev describes it."""

    serial: str  # the USB device's serial number (ID_SERIAL_SHORT)
    slot: str  # the dock port: ID_PATH of the USB device, stable per physical socket
    devnode: str  # the block device holding the filesystem, e.g. /dev/sdb1
    sys_path: str
    fs_type: str  # vfat | exfat | … ("" when udev could not tell)
    vendor_id: str = ""
    model_id: str = ""
    vendor: str = ""
    model: str = ""
    fs_uuid: str = ""
    fs_label: str = ""

    def as_json(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class DockEvent:
    action: str  # "add" | "remove"
    identity: DeviceIdentity


@dataclass(frozen=True)
class DeviceHealth:
    """What a profile could read from the camera at docking (seed rule R7)."""

    battery_percent: int | None = None
    free_bytes: int | None = None
    total_bytes: int | None = None
    camera_clock: datetime | None = None  # the camera's clock, as UTC, read at `read_at`
    read_at: datetime | None = None

    @property
    def clock_offset_s(self) -> int | None:
        """Camera clock minus true time, in whole seconds (invariant 7)."""
        if self.camera_clock is None or self.read_at is None:
            return None
        return round((self.camera_clock - self.read_at).total_seconds())

    def as_json(self) -> dict[str, object]:
        return {
            "battery_percent": self.battery_percent,
            "free_bytes": self.free_bytes,
            "total_bytes": self.total_bytes,
            "camera_clock": self.camera_clock.isoformat() if self.camera_clock else None,
            "clock_offset_s": self.clock_offset_s,
        }


# What udev leaves in ID_SERIAL_SHORT (it replaces anything else with "_").
SERIAL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9#+.:=@_-]{0,127}")


def check_serial(serial: str, where: str = "serial") -> str:
    """The serial, or ConfigError: a malformed one could never match a docking."""
    if not SERIAL_RE.fullmatch(serial):
        raise ConfigError(
            f"{where}: invalid device serial {serial!r} (letters, digits and #+.:=@_- only)"
        )
    return serial


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slot_dirname(slot: str) -> str:
    """A file-system-safe, still readable name for a dock slot's mount point."""
    name = _UNSAFE.sub("_", slot).strip("._") or "slot"
    return name[:120]
