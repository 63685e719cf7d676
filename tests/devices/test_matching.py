"""Profile choice: operator rules first, then a look at the volume's names."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from dockd.config import DeviceRule, DevicesConfig, ProfileConfig
from dockd.devices.identity import DeviceIdentity
from dockd.devices.matching import list_names, profile_for, recognise_layout, rule_matches

CAMERA = DeviceIdentity(
    serial="A1B2C3D4",
    slot="pci-0000:00:14.0-usb-0:2",
    devnode="/dev/sdb1",
    sys_path="/sys/devices/x/block/sdb/sdb1",
    fs_type="vfat",
    vendor_id="2a5f",
    model_id="0c01",
    vendor="Acme Corp",
    model="DSJ-V9",
)


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        (DeviceRule("generic"), True),  # no patterns: matches every camera
        (DeviceRule("generic", vendor_id="2a5f"), True),
        (DeviceRule("generic", vendor_id="2A5F"), True),  # ids are case-insensitive
        (DeviceRule("generic", vendor_id="2a5"), False),  # whole value, not a prefix
        (DeviceRule("generic", vendor_id="2a5?", model_id="0c*"), True),
        (DeviceRule("generic", vendor_id="2a5f", model_id="0d*"), False),  # all must match
        (DeviceRule("generic", vendor="ACME*"), True),
        (DeviceRule("generic", model="dsj-v[0-9]"), True),
        (DeviceRule("generic", serial="A1B2*"), True),
        (DeviceRule("generic", serial="X*"), False),
    ],
)
def test_rule_patterns(rule: DeviceRule, matches: bool) -> None:
    assert rule_matches(rule, CAMERA) is matches


def test_an_empty_identity_field_matches_only_a_star() -> None:
    bare = dataclasses.replace(CAMERA, vendor="")
    assert not rule_matches(DeviceRule("generic", vendor="Acme*"), bare)
    assert rule_matches(DeviceRule("generic", vendor="*"), bare)


def test_first_matching_rule_wins() -> None:
    config = DevicesConfig(
        rules=(
            DeviceRule("generic", vendor_id="ffff"),
            DeviceRule("gat947", vendor_id="2a5f"),
            DeviceRule("generic"),
        )
    )
    assert profile_for(CAMERA, config) == "gat947"


def test_no_rule_means_no_answer() -> None:
    assert profile_for(CAMERA, DevicesConfig()) is None
    assert profile_for(CAMERA, DevicesConfig(rules=(DeviceRule("generic", serial="Z*"),))) is None


GENERIC_DEFAULT = ProfileConfig(default_profile="generic")


@pytest.mark.parametrize(
    ("names", "config", "expected"),
    [
        ([(b"DCIM", b"DSJ0001_20261125080000_0001.MP4")], GENERIC_DEFAULT, "gat947"),
        ([(b"012345_DSJ0001_20261125080000_0002.mp4",)], GENERIC_DEFAULT, "gat947"),
        ([(b"DCIM", b"100MEDIA", b"VID_0001.MP4")], GENERIC_DEFAULT, "generic"),
        ([(b"DCIM", b"100MEDIA", b"VID_0001.MP4")], ProfileConfig(), "gat947"),  # the default
        ([], GENERIC_DEFAULT, "generic"),
        # A GA/T 947-looking name that is no media file says nothing.
        ([(b"DSJ0001_20261125080000_0001.LOG",)], GENERIC_DEFAULT, "generic"),
        # Nor does one in an operating-system folder (a PC copied it there).
        ([(b"$RECYCLE.BIN", b"DSJ0001_20261125080000_0001.MP4")], GENERIC_DEFAULT, "generic"),
        ([()], GENERIC_DEFAULT, "generic"),  # an empty path is ignored, not an error
    ],
)
def test_recognise_layout(
    names: list[tuple[bytes, ...]], config: ProfileConfig, expected: str
) -> None:
    assert recognise_layout(names, config) == expected


def _touch(root: Path, rel: bytes) -> None:
    path = os.path.join(os.fsencode(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"x")


def test_list_names_walks_breadth_first_and_returns_files_only(tmp_path: Path) -> None:
    for rel in (b"a/b/c/deep.mp4", b"top.mp4", b"a/mid.mp4", b"odd\xff.mp4"):
        _touch(tmp_path, rel)
    names = list_names(tmp_path, limit=100)
    assert set(names) == {
        (b"top.mp4",),
        (b"odd\xff.mp4",),
        (b"a", b"mid.mp4"),
        (b"a", b"b", b"c", b"deep.mp4"),
    }
    # Shallow before deep, so that a limit cuts the deep ones.
    assert [len(n) for n in names] == sorted(len(n) for n in names)


def test_list_names_stops_at_the_limit(tmp_path: Path) -> None:
    for i in range(50):
        _touch(tmp_path, b"DCIM/f%02d.mp4" % i)
    # The folder counts as an entry too: 1 + 9 files.
    assert len(list_names(tmp_path, limit=10)) == 9
    assert list_names(tmp_path, limit=0) == []


def test_list_names_respects_max_depth(tmp_path: Path) -> None:
    _touch(tmp_path, b"1/2/3/f.mp4")
    _touch(tmp_path, b"1/g.mp4")
    assert list_names(tmp_path, limit=100, max_depth=2) == [(b"1", b"g.mp4")]


def test_list_names_follows_no_symlink(tmp_path: Path) -> None:
    """Invariant 6: a link on the volume cannot lead the listing off it."""
    outside = tmp_path / "outside"
    _touch(outside, b"secret.mp4")
    root = tmp_path / "volume"
    _touch(root, b"DCIM/real.mp4")
    (root / "DCIM" / "link_dir").symlink_to(outside)
    (root / "link_file.mp4").symlink_to(outside / "secret.mp4")
    (root / "dangling.mp4").symlink_to(tmp_path / "nowhere")
    assert list_names(root, limit=100) == [(b"DCIM", b"real.mp4")]


def test_list_names_passes_over_unreadable_places(tmp_path: Path) -> None:
    assert list_names(tmp_path / "missing", limit=10) == []
    _touch(tmp_path, b"f.mp4")
    assert list_names(tmp_path / "f.mp4", limit=10) == []  # not a folder
