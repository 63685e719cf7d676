"""Camera volumes for the guest: FAT32 images on the host, plugged in as USB sticks.

Each camera is a raw FAT32 image made and read with mtools (tests/volumes.py),
so the host can check, without the guest's help and after a power cut, what
is really on the medium. Footage is named as a GA/T 947 recorder names it
(`012345_DSJ0001_20261125080000_0001.MP4`, dockd's default profile) and is
either real short MP4s (ffmpeg) or, where a copy must still be running when
the test acts, large files of random bytes (stored all the same, flagged
`unreadable_media` by ffprobe: a broken recording is evidence too).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dockd.demo import gat947_name, make_clip
from tests.volumes import fat_files, fat_put, fat_read, make_fat32_image

CAMERA_ZONE = "Asia/Shanghai"  # profiles.camera_timezone's default
FOOTAGE_DIR = "DCIM/100MEDIA"


@dataclass
class Camera:
    """A camera volume: its image, its USB serial, and what was put on it (path -> sha256)."""

    image: Path
    serial: str
    officer: str = "012345"
    files: dict[str, str] = field(default_factory=dict)

    def on_medium(self) -> dict[str, str]:
        """What is on the image now, read by mtools on the host: path -> sha256."""
        return {
            rel: hashlib.sha256(fat_read(self.image, rel)).hexdigest()
            for rel in fat_files(self.image)
        }

    def footage_left(self) -> set[str]:
        """The footage paths (of those put on) still on the medium."""
        return set(self.files) & fat_files(self.image)


def _start(seq: int, hours_ago: float) -> datetime:
    # Recorded a few hours ago: well inside the 24 h deadline, never "late".
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
    return base + timedelta(minutes=10 * seq)


def new_camera(folder: Path, serial: str, size_mib: int = 64) -> Camera:
    image = make_fat32_image(folder / f"{serial}.img", size_mib=size_mib)
    return Camera(image, serial)


def add_clips(cam: Camera, count: int, work: Path, hours_ago: float = 6.0) -> None:
    """`count` real H.264/AAC clips (about 20-40 kB each)."""
    work.mkdir(parents=True, exist_ok=True)
    for seq in range(1, count + 1):
        start = _start(seq, hours_ago)
        name = gat947_name(cam.officer, cam.serial, start, seq, CAMERA_ZONE)
        clip = work / name
        make_clip(clip, start, seconds=1.0 + 0.3 * seq)
        _put(cam, name, clip.read_bytes(), clip)


def add_blobs(cam: Camera, count: int, size_mib: int, work: Path, hours_ago: float = 5.0) -> None:
    """`count` files of `size_mib` MiB of random bytes, named like footage."""
    work.mkdir(parents=True, exist_ok=True)
    for seq in range(1, count + 1):
        start = _start(seq, hours_ago)
        name = gat947_name(cam.officer, cam.serial, start, 100 + seq, CAMERA_ZONE)
        blob = work / name
        blob.write_bytes(os.urandom(size_mib << 20))
        _put(cam, name, blob.read_bytes(), blob)
        blob.unlink()


def _put(cam: Camera, name: str, data: bytes, source: Path) -> None:
    rel = f"{FOOTAGE_DIR}/{name}"
    fat_put(cam.image, rel, source)
    cam.files[rel] = hashlib.sha256(data).hexdigest()
