"""Cameras that show no storage until told: one USB control transfer (pyusb).

Some body cameras enumerate as a vendor-specific USB device and expose
their mass storage only after a vendor command (the way usb_modeswitch
works for modems). A `[[devices.rules]]` entry with `usb_command` names the
transfer; the daemon sends it when such a USB device appears, and the
camera then re-appears as a block device and is docked like any other.

Format of `usb_command`: "bmRequestType,bRequest,wValue,wIndex[,hex data]",
numbers in decimal or 0x-hex, e.g. "0x40,0xa0,0x0001,0x0000" or
"0x40,0x01,0,0,4d534321".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from dockd.config import DeviceRule
from dockd.errors import ConfigError, DockdError

log = structlog.get_logger("dockd.devices")


@dataclass(frozen=True)
class UsbCommand:
    request_type: int
    request: int
    value: int
    index: int
    data: bytes = b""

    @property
    def host_to_device(self) -> bool:
        return not self.request_type & 0x80


def parse_usb_command(text: str, where: str = "usb_command") -> UsbCommand:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 5):
        raise ConfigError(
            f"{where}: expected 'bmRequestType,bRequest,wValue,wIndex[,hex data]', got {text!r}"
        )
    try:
        numbers = [int(p, 0) for p in parts[:4]]
    except ValueError:
        raise ConfigError(f"{where}: not numbers: {text!r}") from None
    limits = (0xFF, 0xFF, 0xFFFF, 0xFFFF)
    for name, number, limit in zip(
        ("bmRequestType", "bRequest", "wValue", "wIndex"), numbers, limits, strict=True
    ):
        if not 0 <= number <= limit:
            raise ConfigError(f"{where}: {name} {number} is out of range 0..{limit}")
    try:
        data = bytes.fromhex(parts[4]) if len(parts) == 5 else b""
    except ValueError:
        raise ConfigError(f"{where}: data is not hex: {parts[4]!r}") from None
    command = UsbCommand(numbers[0], numbers[1], numbers[2], numbers[3], data)
    if data and not command.host_to_device:
        raise ConfigError(f"{where}: data given for a device-to-host request")
    return command


def _find_device(vendor_id: int, product_id: int, serial: str) -> Any:
    import usb.core

    for dev in usb.core.find(find_all=True, idVendor=vendor_id, idProduct=product_id) or ():
        try:
            if not serial or dev.serial_number == serial:
                return dev
        except (ValueError, usb.core.USBError):
            continue  # no permission to read strings, or it went away
    return None


def send_usb_command(
    vendor_id: int,
    product_id: int,
    serial: str,
    command: UsbCommand,
    *,
    find: Callable[[int, int, str], Any] = _find_device,
    timeout_ms: int = 5000,
) -> None:
    """Send `command` to the USB device; DockdError if it is gone or refuses."""
    dev = find(vendor_id, product_id, serial)
    if dev is None:
        raise DockdError(f"USB device {vendor_id:04x}:{product_id:04x} {serial} is not present")
    payload: bytes | int = command.data if command.host_to_device else max(len(command.data), 64)
    try:
        dev.ctrl_transfer(
            command.request_type,
            command.request,
            command.value,
            command.index,
            payload,
            timeout_ms,
        )
    except Exception as exc:  # usb.core.USBError and backend errors alike
        raise DockdError(
            f"USB command to {vendor_id:04x}:{product_id:04x} {serial} failed: {exc}"
        ) from None
    log.info(
        "dock.usb_command",
        vendor_id=f"{vendor_id:04x}",
        model_id=f"{product_id:04x}",
        serial=serial,
        request=command.request,
    )


@dataclass(frozen=True)
class UsbSighting:
    vendor_id: str
    model_id: str
    serial: str


def commands_for(sighting: UsbSighting, rules: tuple[DeviceRule, ...]) -> list[UsbCommand]:
    """The usb_command of the first rule with one that names this vendor and model."""
    from fnmatch import fnmatchcase

    for rule in rules:
        if (
            rule.usb_command
            and rule.vendor_id.lower() == sighting.vendor_id.lower()
            and rule.model_id.lower() == sighting.model_id.lower()
            and (not rule.serial or fnmatchcase(sighting.serial, rule.serial))
        ):
            return [parse_usb_command(rule.usb_command)]
    return []


class UsbWatcher:
    """Sends the configured command to each matching USB device that appears."""

    def __init__(
        self,
        rules: tuple[DeviceRule, ...],
        send: Callable[[int, int, str, UsbCommand], None] = send_usb_command,
    ) -> None:
        self.rules = rules
        self.send = send
        self._observer: Any = None

    def handle(self, action: str, properties: Mapping[str, str]) -> bool:
        """One udev event of a USB device; True when a command was sent."""
        if action != "add" or properties.get("DEVTYPE") != "usb_device":
            return False
        sighting = UsbSighting(
            properties.get("ID_VENDOR_ID", ""),
            properties.get("ID_MODEL_ID", ""),
            properties.get("ID_SERIAL_SHORT", ""),
        )
        for command in commands_for(sighting, self.rules):
            try:
                self.send(
                    int(sighting.vendor_id, 16),
                    int(sighting.model_id, 16),
                    sighting.serial,
                    command,
                )
            except (DockdError, ValueError) as exc:
                log.error("dock.usb_command_failed", serial=sighting.serial, reason=str(exc))
                return False
            return True
        return False

    def start(self) -> None:
        if not any(rule.usb_command for rule in self.rules):
            return
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        monitor.filter_by("usb", "usb_device")

        def event(device: Any) -> None:
            self.handle(device.action or "", dict(device.properties))

        self._observer = pyudev.MonitorObserver(monitor, callback=event, name="dockd-usb")
        self._observer.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
