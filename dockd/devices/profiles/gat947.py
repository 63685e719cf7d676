"""GA/T 947 law-enforcement recorders (执法记录仪).

Their names carry the device's product serial (7 characters), often the
officer's number (警号, 6 characters), the start time `YYYYMMDDhhmmss` in
the camera's local time, and a sequence number, in vendor-specific orders.
The patterns are configuration (`profiles.name_patterns`); the first one
that matches wins. Footage may sit in any folder, so every media file
outside operating-system folders is taken.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dockd.config import ProfileConfig
from dockd.devices.profiles.base import NameInfo, Profile


def parse_camera_time(text: str, zone: ZoneInfo) -> datetime | None:
    """`YYYYMMDDhhmmss` in `zone` -> aware UTC, or None if it is no real time."""
    try:
        local = datetime.strptime(text, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return local.replace(tzinfo=zone).astimezone(UTC)


class Gat947Profile(Profile):
    name = "gat947"

    def __init__(self, config: ProfileConfig) -> None:
        super().__init__(config)
        self._patterns = tuple(re.compile(p) for p in config.name_patterns)
        self._zone = ZoneInfo(config.camera_timezone)

    def parse_name(self, filename: bytes) -> NameInfo:
        text = os.fsdecode(filename)
        for pattern in self._patterns:
            match = pattern.match(text)
            if match is None:
                continue
            groups = match.groupdict()
            time_text = groups.get("time")
            seq_text = groups.get("seq")
            return NameInfo(
                device=groups.get("device"),
                officer=groups.get("officer"),
                start=parse_camera_time(time_text, self._zone) if time_text else None,
                seq=int(seq_text) if seq_text and seq_text.isdigit() else None,
            )
        return NameInfo()
