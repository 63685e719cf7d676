"""Media metadata from ffprobe.

ffmpeg-python's `probe()` has no time limit, and a hostile file must not be
able to stall a docking session, so ffprobe is run here with a timeout; the
JSON it prints is the same that `ffmpeg.probe` returns. A file ffprobe
cannot read gets a MediaInfo with `error` set: it is still evidence.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

_ADDRESS = re.compile(r" @ 0x[0-9a-fA-F]+\]")


@dataclass(frozen=True)
class MediaInfo:
    format_name: str | None = None
    duration_ms: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    creation_time: datetime | None = None
    error: str | None = None

    @property
    def readable(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.creation_time is not None:
            data["creation_time"] = self.creation_time.isoformat().replace("+00:00", "Z")
        return {k: v for k, v in data.items() if v is not None}


def _duration_ms(text: Any) -> int | None:
    try:
        value = Decimal(str(text))
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or value < 0:
        return None
    return int(value * 1000)


def creation_time_of(tags: dict[str, Any]) -> datetime | None:
    text = tags.get("creation_time")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Cameras with no clock write the MP4 epoch (1904) or 1970; neither is a time.
    if moment.year < 2000:
        return None
    return moment.astimezone(UTC)


def parse_ffprobe(data: dict[str, Any]) -> MediaInfo:
    """Turn ffprobe's `-show_format -show_streams -of json` output into MediaInfo."""
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    video: dict[str, Any] = next((s for s in streams if s.get("codec_type") == "video"), {})
    audio: dict[str, Any] = next((s for s in streams if s.get("codec_type") == "audio"), {})
    if not streams:
        return MediaInfo(format_name=fmt.get("format_name"), error="no media streams found")
    tags = {**(video.get("tags") or {}), **(fmt.get("tags") or {})}
    width, height = video.get("width"), video.get("height")
    return MediaInfo(
        format_name=fmt.get("format_name"),
        duration_ms=_duration_ms(fmt.get("duration", video.get("duration"))),
        video_codec=video.get("codec_name"),
        audio_codec=audio.get("codec_name"),
        width=width if isinstance(width, int) else None,
        height=height if isinstance(height, int) else None,
        creation_time=creation_time_of(tags),
    )


def probe(path: Path, ffprobe: str = "ffprobe", timeout: float = 60.0) -> MediaInfo:
    args = [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
    try:
        proc = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return MediaInfo(error=f"ffprobe not found ({ffprobe})")
    except subprocess.TimeoutExpired:
        return MediaInfo(error=f"ffprobe timed out after {timeout:g} s")
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        text = message[-1] if message else f"ffprobe exit {proc.returncode}"
        # "[h264 @ 0x55aeafb226c0] ...": the address differs from run to run; the
        # recorded reason must not (a re-probe gives the same words).
        return MediaInfo(error=_ADDRESS.sub("]", text)[:500])
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return MediaInfo(error="ffprobe printed no valid JSON")
    return parse_ffprobe(data)
