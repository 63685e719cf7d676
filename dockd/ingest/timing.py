"""When was a recording made? Pure: the evidence in, a decision and its source out.

Order of trust: the camera's file name (written when recording started),
then the container's creation_time, then the file's mtime (written when
the camera closed the file, so it marks the end, not the start).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dockd.devices.profiles import NameInfo
from dockd.ingest.probe import MediaInfo


@dataclass(frozen=True)
class RecordedTimes:
    start: datetime
    end: datetime
    source: str  # "file_name" | "container" | "file_mtime"


def resolve_times(name: NameInfo, media: MediaInfo, mtime_ns: int) -> RecordedTimes:
    duration = timedelta(milliseconds=media.duration_ms) if media.duration_ms else timedelta(0)
    if name.start is not None:
        return RecordedTimes(name.start, name.start + duration, "file_name")
    if media.creation_time is not None:
        return RecordedTimes(media.creation_time, media.creation_time + duration, "container")
    end = datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC)
    return RecordedTimes(end - duration, end, "file_mtime")
