"""`dockd demo`: a synthetic camera docked into a throw-away state directory.

Also the footage maker that the tests and the benchmark use: short real
MP4s from ffmpeg's test sources, with creation_time set, named as a
GA/T 947 recorder names them.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import ffmpeg

from dockd.clock import isoformat_utc

# The demo camera's serial, which its file names carry as the device field.
DEMO_SERIAL = "DSJ0001"


def make_clip(path: Path, created: datetime, seconds: float = 2.0, size: str = "320x240") -> None:
    """Write a real H.264/AAC MP4 of `seconds` with `creation_time` = `created`."""
    video = ffmpeg.input(f"testsrc=size={size}:rate=15", f="lavfi", t=seconds)
    audio = ffmpeg.input("sine=frequency=880:sample_rate=16000", f="lavfi", t=seconds)
    (
        ffmpeg.output(
            video,
            audio,
            str(path),
            vcodec="libx264",
            preset="ultrafast",
            pix_fmt="yuv420p",
            acodec="aac",
            metadata=f"creation_time={isoformat_utc(created)}",
            loglevel="error",
        )
        .overwrite_output()
        .run(quiet=True)
    )


def gat947_name(
    officer: str, device: str, start: datetime, seq: int, zone: str, ext: str = "MP4"
) -> str:
    local = start.astimezone(ZoneInfo(zone))
    return f"{officer}_{device}_{local:%Y%m%d%H%M%S}_{seq:04d}.{ext}"


def build_camera(
    root: Path,
    now: datetime,
    zone: str,
    clips: int = 3,
    officer: str = "012345",
    device: str = "DSJ0001",
) -> list[Path]:
    """Lay out a camera volume: `clips` real MP4s and one corrupt clip."""
    folder = root / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for seq in range(1, clips + 1):
        start = now - timedelta(hours=6) + timedelta(minutes=10 * seq)
        path = folder / gat947_name(officer, device, start, seq, zone)
        make_clip(path, start)
        made.append(path)
    start = now - timedelta(hours=6) + timedelta(minutes=10 * (clips + 1))
    corrupt = folder / gat947_name(officer, device, start, clips + 1, zone)
    # A clip cut off by a flat battery: an MP4 header and no usable media.
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4096))
    made.append(corrupt)
    return made
