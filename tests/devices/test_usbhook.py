"""The USB command hook: parsing, matching, and the transfer it sends.

A camera that needs a vendor command cannot exist on this machine, so the
pyusb device is the one stand-in here: it records the control transfer.
"""

from __future__ import annotations

from typing import Any

import pytest

from dockd.config import DeviceRule, parse_config
from dockd.devices.usbhook import (
    UsbCommand,
    UsbWatcher,
    commands_for,
    parse_usb_command,
    send_usb_command,
)
from dockd.errors import ConfigError, DockdError


def test_parse_usb_command() -> None:
    assert parse_usb_command("0x40,0xa0,0x0001,0") == UsbCommand(0x40, 0xA0, 1, 0)
    assert parse_usb_command("64, 1, 2, 3, 4d534321").data == b"MSC!"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0x40,1,2", "expected 'bmRequestType"),
        ("0x40,x,2,3", "not numbers"),
        ("0x40,256,0,0", "bRequest 256 is out of range"),
        ("0x40,1,0,0x10000", "wIndex 65536 is out of range"),
        ("0x40,1,0,0,zz", "data is not hex"),
        ("0xc0,1,0,0,00", "data given for a device-to-host request"),
    ],
)
def test_bad_usb_commands_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_usb_command(text)


def test_config_needs_exact_ids_for_a_usb_command() -> None:
    with pytest.raises(ConfigError, match="needs exact vendor_id and model_id"):
        parse_config(
            '[[devices.rules]]\nvendor_id = "12*"\nmodel_id = "5678"\n'
            'profile = "generic"\nusb_command = "0x40,1,0,0"\n'
        )


RULES = (
    DeviceRule(profile="generic", vendor_id="1234", model_id="5678", serial="CAM*",
               usb_command="0x40,0xa0,1,0"),
    DeviceRule(profile="gat947", vendor_id="1234"),
)  # fmt: skip


class FakeUsbDevice:
    """Records control transfers, as a camera would receive them."""

    def __init__(self, fail: bool = False) -> None:
        self.transfers: list[tuple[Any, ...]] = []
        self.fail = fail

    def ctrl_transfer(self, *args: Any) -> int:
        if self.fail:
            raise OSError("[Errno 32] Pipe error")
        self.transfers.append(args)
        return 0


def test_matching_device_gets_its_command() -> None:
    sent: list[tuple[int, int, str, UsbCommand]] = []
    watcher = UsbWatcher(RULES, send=lambda v, p, s, c: sent.append((v, p, s, c)))
    props = {
        "DEVTYPE": "usb_device",
        "ID_VENDOR_ID": "1234",
        "ID_MODEL_ID": "5678",
        "ID_SERIAL_SHORT": "CAM0001",
    }
    assert watcher.handle("add", props)
    assert sent == [(0x1234, 0x5678, "CAM0001", UsbCommand(0x40, 0xA0, 1, 0))]
    # Other serials, other models, interfaces and removals get nothing.
    assert not watcher.handle("add", {**props, "ID_SERIAL_SHORT": "X1"})
    assert not watcher.handle("add", {**props, "ID_MODEL_ID": "9999"})
    assert not watcher.handle("add", {**props, "DEVTYPE": "usb_interface"})
    assert not watcher.handle("remove", props)
    assert len(sent) == 1


def test_commands_for_ignores_rules_without_a_command() -> None:
    from dockd.devices.usbhook import UsbSighting

    assert commands_for(UsbSighting("1234", "0001", "A"), RULES) == []


def test_send_writes_the_control_transfer() -> None:
    dev = FakeUsbDevice()
    command = parse_usb_command("0x40,0xa0,0x0001,0x0002,beef")
    send_usb_command(0x1234, 0x5678, "CAM1", command, find=lambda v, p, s: dev)
    assert dev.transfers == [(0x40, 0xA0, 1, 2, b"\xbe\xef", 5000)]


def test_send_failures_are_dockd_errors() -> None:
    command = parse_usb_command("0x40,1,0,0")
    with pytest.raises(DockdError, match="is not present"):
        send_usb_command(0x1234, 0x5678, "CAM1", command, find=lambda v, p, s: None)
    with pytest.raises(DockdError, match=r"failed: .*Pipe error"):
        send_usb_command(0x1234, 0x5678, "CAM1", command, find=lambda v, p, s: FakeUsbDevice(True))


def test_failed_send_is_logged_not_raised() -> None:
    def refuse(v: int, p: int, s: str, c: UsbCommand) -> None:
        raise DockdError("gone")

    watcher = UsbWatcher(RULES, send=refuse)
    props = {"DEVTYPE": "usb_device", "ID_VENDOR_ID": "1234", "ID_MODEL_ID": "5678",
             "ID_SERIAL_SHORT": "CAM2"}  # fmt: skip
    assert watcher.handle("add", props) is False
