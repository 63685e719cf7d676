"""What a docked camera can tell about itself (seed rule R7: battery, storage, clock).

Every mass-storage camera tells its free space through its filesystem;
battery and clock need a profile that can ask the camera (a USB command,
see usbhook.py), and are None otherwise. Recorded with the docking's
session entry; the clock offset also goes beside every time taken from the
camera (invariant 7).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import structlog

from dockd.devices.identity import DeviceHealth

log = structlog.get_logger("dockd.devices")


def read_health(root: Path, now: datetime) -> DeviceHealth:
    """Free and total bytes of the mounted volume at `root`; unknown fields None."""
    try:
        st = os.statvfs(root)
    except OSError as exc:
        log.warning("dock.health_unreadable", path=str(root), reason=exc.strerror)
        return DeviceHealth(read_at=now)
    if st.f_blocks == 0:
        return DeviceHealth(read_at=now)  # the driver does not say (fusefat)
    return DeviceHealth(
        free_bytes=st.f_bavail * st.f_frsize,
        total_bytes=st.f_blocks * st.f_frsize,
        read_at=now,
    )
