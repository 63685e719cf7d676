"""Recording times: which source wins, and UTC throughout (invariant 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dockd.devices.profiles import NameInfo
from dockd.ingest.probe import MediaInfo, parse_ffprobe
from dockd.ingest.timing import resolve_times
from dockd.retention.compliance import is_late, offload_deadline

T = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
MTIME_NS = int(datetime(2026, 11, 25, 2, 0, tzinfo=UTC).timestamp() * 1e9)


def test_file_name_beats_container_beats_mtime() -> None:
    media = MediaInfo(duration_ms=90_000, creation_time=T + timedelta(minutes=5))
    by_name = resolve_times(NameInfo(start=T), media, MTIME_NS)
    assert (by_name.start, by_name.end, by_name.source) == (
        T,
        T + timedelta(seconds=90),
        "file_name",
    )
    by_container = resolve_times(NameInfo(), media, MTIME_NS)
    assert by_container.source == "container" and by_container.start == T + timedelta(minutes=5)
    by_mtime = resolve_times(NameInfo(), MediaInfo(duration_ms=60_000), MTIME_NS)
    assert by_mtime.source == "file_mtime"
    assert by_mtime.end == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    assert by_mtime.start == by_mtime.end - timedelta(minutes=1), (
        "mtime marks the end of a recording"
    )


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(0, 10**9),
)
def test_deadline_is_end_plus_24h(end: datetime, seconds: int) -> None:
    ingested = end + timedelta(seconds=seconds)
    assert offload_deadline(end) == end + timedelta(hours=24)
    assert is_late(end, ingested) == (seconds > 24 * 3600)


def test_ffprobe_output_is_read() -> None:
    info = parse_ffprobe(
        {
            "format": {
                "format_name": "mov,mp4",
                "duration": "2.500000",
                "tags": {"creation_time": "2026-11-25T01:00:00.000000Z"},
            },
            "streams": [
                {"codec_type": "video", "codec_name": "h264", "width": 320, "height": 240},
                {"codec_type": "audio", "codec_name": "aac"},
            ],
        }
    )
    assert info == MediaInfo("mov,mp4", 2500, "h264", "aac", 320, 240, T)


def test_clockless_camera_times_are_ignored() -> None:
    info = parse_ffprobe(
        {
            "format": {"tags": {"creation_time": "1904-01-01T00:00:00Z"}},
            "streams": [{"codec_type": "video"}],
        }
    )
    assert info.creation_time is None and info.readable


def test_no_streams_is_unreadable() -> None:
    assert not parse_ffprobe({"format": {"format_name": "mp3"}, "streams": []}).readable
