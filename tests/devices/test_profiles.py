"""Profiles: footage selection and GA/T 947 name parsing (table + properties)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockd.config import ProfileConfig
from dockd.devices.profiles import NameInfo, make_profile
from dockd.errors import ConfigError

GAT = make_profile("gat947", ProfileConfig())
GENERIC = make_profile("generic", ProfileConfig())
CST = ZoneInfo("Asia/Shanghai")


def cst(*args: int) -> datetime:
    return datetime(*args, tzinfo=CST).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # <device>_<time>_<seq>
        ("DSJ0001_20261125080000_0001.MP4", NameInfo("DSJ0001", None, cst(2026, 11, 25, 8), 1)),
        # <officer>_<device>_<time>_<seq>
        (
            "012345_DSJ0001_20261125080000_0002.MP4",
            NameInfo("DSJ0001", "012345", cst(2026, 11, 25, 8), 2),
        ),
        # <device>_<officer>_<time>_<seq>
        (
            "DSJ0001_012345_20261125235959_17.mov",
            NameInfo("DSJ0001", "012345", cst(2026, 11, 25, 23, 59, 59), 17),
        ),
        # <time>_<device>_<seq>
        ("20261125080000_A1B2C3D_0003.WAV", NameInfo("A1B2C3D", None, cst(2026, 11, 25, 8), 3)),
        # packed <device><time><seq>
        ("DSJ0001202611250800000004.MP4", NameInfo("DSJ0001", None, cst(2026, 11, 25, 8), 4)),
        # times that are no real time keep the rest of the name
        ("DSJ0001_20261399080000_0001.MP4", NameInfo("DSJ0001", None, None, 1)),
        # names no pattern knows
        ("VID_0001.MP4", NameInfo()),
        ("", NameInfo()),
        ("012345_DSJ0001_2026112508000_0001.MP4", NameInfo()),
    ],
)
def test_gat947_names(name: str, expected: NameInfo) -> None:
    assert GAT.parse_name(name.encode()) == expected


def test_time_is_read_in_the_camera_zone_and_stored_as_utc() -> None:
    info = GAT.parse_name(b"DSJ0001_20260101000000_1.MP4")
    assert info.start == datetime(2025, 12, 31, 16, 0, tzinfo=UTC)
    other = make_profile("gat947", ProfileConfig(camera_timezone="UTC"))
    assert other.parse_name(b"DSJ0001_20260101000000_1.MP4").start == datetime(
        2026, 1, 1, tzinfo=UTC
    )


def test_configured_pattern_wins() -> None:
    cfg = ProfileConfig(name_patterns=(r"^CAM-(?P<device>\w+)-(?P<time>\d{14})\.mp4$",))
    info = make_profile("gat947", cfg).parse_name(b"CAM-X9-20260101120000.mp4")
    assert info.device == "X9" and info.officer is None and info.seq is None
    assert info.start == cst(2026, 1, 1, 12)


def test_non_utf8_names_never_crash() -> None:
    assert GAT.parse_name(b"\xff\xfe_20261125080000_1.MP4") == NameInfo()


@given(st.binary(max_size=300))
def test_parse_name_is_total(name: bytes) -> None:
    """Any bytes a hostile volume can hold parse to a NameInfo, never an exception."""
    info = GAT.parse_name(name)
    assert isinstance(info, NameInfo)
    if info.start is not None:
        assert info.start.tzinfo is not None


@given(
    st.from_regex(r"[A-Za-z0-9]{7}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9]{6}", fullmatch=True),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(0, 999999),
)
def test_officer_device_time_seq_round_trips(
    device: str, officer: str, moment: datetime, seq: int
) -> None:
    moment = moment.replace(microsecond=0)
    name = f"{officer}_{device}_{moment:%Y%m%d%H%M%S}_{seq}.MP4".encode()
    info = GAT.parse_name(name)
    assert (info.device, info.officer, info.seq) == (device, officer, seq)
    assert info.start == moment.replace(tzinfo=CST).astimezone(UTC)


@pytest.mark.parametrize(
    ("parts", "generic", "gat947"),
    [
        ((b"DCIM", b"100MEDIA", b"a.MP4"), None, None),
        ((b"a.mp4",), "outside the footage folders", None),
        ((b"Record", b"x.wav"), None, None),
        ((b"DCIM", b"notes.txt"), "not a media file extension", "not a media file extension"),
        ((b"DCIM", b"noext"), "not a media file extension", "not a media file extension"),
        ((b"DCIM", b"\xff.jpg"), None, None),
    ],
)
def test_footage_selection(
    parts: tuple[bytes, ...], generic: str | None, gat947: str | None
) -> None:
    assert GENERIC.skip_file(parts) == generic
    assert GAT.skip_file(parts) == gat947


def test_system_folders_are_not_searched() -> None:
    for name in (b"System Volume Information", b"$RECYCLE.BIN", b".Trashes", b"lost.dir"):
        assert GAT.skip_dir((name,)) == "system folder"
    assert GAT.skip_dir((b"DCIM",)) is None


def test_unknown_profile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        make_profile("nope", ProfileConfig())


def test_extensions_are_configurable() -> None:
    cfg = dataclasses.replace(ProfileConfig(), extensions=("dav",))
    profile = make_profile("gat947", cfg)
    assert profile.skip_file((b"x.DAV",)) is None
    assert profile.skip_file((b"x.mp4",)) == "not a media file extension"
