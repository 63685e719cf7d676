"""Readable disc-safe names, the staged bag (links, manifests, bagit validation), the README."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import bagit  # type: ignore[import-untyped,unused-ignore]
import pytest

from dockd.archive.bag import (
    ArchiveError,
    PayloadFile,
    bag_path_for,
    check_bag_paths,
    safe_component,
    write_bag,
)
from dockd.archive.readme import POWERSHELL, readme_bytes, readme_text
from dockd.integrity.standalone_verify import BAGIT_TEXT
from tests.archive.discs import Dock, Staged, open_service

LAYOUT = {
    "bagit.txt",
    "bag-info.txt",
    "manifest-sha256.txt",
    "tagmanifest-sha256.txt",
    "dockd/catalog.json",
    "dockd/catalog.csv",
    "dockd/entries.jsonl",
    "dockd/proofs.json",
    "dockd/checkpoint.txt",
    "dockd/keys.txt",
    "verify.py",
    "README.txt",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Patrol 3", "Patrol 3"),
        ('a\\b/c:d*e?f"g<h>i|j%k;l', "a_b_c_d_e_f_g_h_i_j_k_l"),
        ("x#&'[]{}!@$^+=,~`", "x#&'[]{}!@$^+=,~`"),  # all fine on Joliet and Windows
        ("tab\there\nnl\x7f", "tab_here_nl_"),
        ("trailing. . ", "trailing"),
        ("..", "_"),
        ("", "_"),
        (".hidden", "hidden"),
        ("CON", "_CON"),
        ("lpt1.txt", "_lpt1.txt"),
        ("一中队", "一中队"),
        ("e\u0301", "\u00e9"),  # NFC
        ("smile 😀", "smile _"),  # outside the BMP: Joliet (UCS-2) cannot hold it
    ],
)
def test_safe_component(text: str, expected: str) -> None:
    assert safe_component(text) == expected
    assert safe_component(expected) == expected  # idempotent


def test_safe_component_caps_characters_and_utf8_bytes() -> None:
    assert len(safe_component("x" * 300)) == 100
    chinese = safe_component("案" * 100)
    assert len(chinese.encode()) <= 240 and chinese == "案" * 80


def test_bag_path_for_readable_names() -> None:
    row = {
        "id": 42,
        "unit": "一中队 Patrol/3",
        "officer": "012345",
        "recorded_start": "2026-11-24T23:30:00Z",
        "source_path": "DCIM/100MEDIA/012345_DSJ0001_20261125073000_0001.MP4",
    }
    assert bag_path_for(row) == (
        "data/一中队 Patrol_3/012345/2026-11-24/42_012345_DSJ0001_20261125073000_0001.MP4"
    )
    # The docks' own day, if asked: 07:30 in Shanghai is the 25th.
    assert bag_path_for(row, ZoneInfo("Asia/Shanghai")).split("/")[3] == "2026-11-25"
    bare = {"id": 7, "unit": None, "officer": " ", "recorded_start": None, "source_path": "x"}
    assert bag_path_for(bare) == "data/_unassigned/_unassigned/_undated/7_x"
    windows = {**bare, "source_path": "D:\\VIDEO\\clip?.mp4"}
    assert bag_path_for(windows).endswith("/7_clip_.mp4")
    with pytest.raises(ArchiveError):
        bag_path_for({**bare, "id": "7"})


def test_bag_path_for_cuts_the_stem_keeps_id_and_extension() -> None:
    row = {"id": 123456, "unit": "U" * 80, "officer": "o", "recorded_start": None}
    name = bag_path_for({**row, "source_path": "现场" * 80 + ".mp4"}).split("/")[-1]
    assert name.startswith("123456_现场") and name.endswith(".mp4")
    assert len(name) <= 100 and len(name.encode()) <= 240
    path = bag_path_for({**row, "source_path": "a" * 200 + ".MP4"})
    assert path.split("/")[1] == "U" * 48
    name = path.split("/")[-1]
    assert len(name) == 100 and name.startswith("123456_aaa") and name.endswith(".MP4")
    # A would-be extension that is not one is part of the stem.
    name = bag_path_for({**row, "source_path": "x." + "y" * 150}).split("/")[-1]
    assert len(name) == 100 and name.startswith("123456_x.yyy")


def test_check_bag_paths_refuses_what_windows_would_merge() -> None:
    check_bag_paths(["data/a/1_x.mp4", "data/b/1_x.mp4", "README.txt"])
    for paths in (
        ["data/Unit/1_x.mp4", "data/unit/2_y.mp4"],  # one folder on Windows
        ["data/a/1_x.mp4", "data/a/1_X.MP4"],
        ["data/a/1_x.mp4", "data/a/1_x.mp4"],
        ["data/../etc/passwd"],
        ["data/a:b/1.mp4"],
    ):
        with pytest.raises(ArchiveError):
            check_bag_paths(paths)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_staged_bag_has_the_layout_and_links_the_store(staged: Staged) -> None:
    files = _files(staged.bag)
    assert {f for f in files if not f.startswith("data/")} == LAYOUT
    assert {f for f in files if f.startswith("data/")} == {p.bag_path for p in staged.payload}
    assert (staged.bag / "bagit.txt").read_text() == BAGIT_TEXT
    for item in staged.payload:
        staged_file = staged.bag / item.bag_path
        assert os.path.samestat(staged_file.stat(), item.source.stat()), "linked, not copied"
        assert staged_file.stat().st_mode & 0o777 == 0o444
    manifest = (staged.bag / "manifest-sha256.txt").read_text("utf-8").splitlines()
    ordered = sorted(staged.payload, key=lambda p: p.bag_path)  # by path, for the reader
    assert manifest == [f"{p.sha256}  {p.bag_path}" for p in ordered]
    listed = {line.split("  ", 1)[1] for line in (staged.bag / "tagmanifest-sha256.txt").open()}
    assert {x.rstrip("\n") for x in listed} == LAYOUT - {"tagmanifest-sha256.txt"}
    info = bagit.Bag(str(staged.bag)).info
    total = sum(p.size for p in staged.payload)
    assert info["Payload-Oxum"] == f"{total}.{len(staged.payload)}"
    assert info["Bag-Count"] == "1 of 1" and info["dockd-Copy"] == "1 of 2"
    assert info["External-Identifier"] == staged.label
    assert info["Source-Organization"] == "dockd/archive-test"
    bagit.Bag(str(staged.bag)).validate()


def test_sha256sum_checks_the_staged_bag(staged: Staged) -> None:
    for manifest in ("manifest-sha256.txt", "tagmanifest-sha256.txt"):
        proc = subprocess.run(
            ["sha256sum", "--strict", "-c", manifest],
            cwd=staged.bag,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "FAILED" not in proc.stdout


def _payload(dock: Dock) -> list[PayloadFile]:
    with open_service(dock) as svc:
        recs = [r for r in svc.recordings() if r.id in dock.ids[:2]]
        return [
            PayloadFile(svc.store.object_path(r.sha256), f"data/x/{r.id}.mp4", r.sha256, r.size)
            for r in recs
        ]


def test_copies_with_fsync_when_links_are_impossible(
    dock: Dock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_link(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(os, "fsync", fsync)
    payload = _payload(dock)
    write_bag(tmp_path / "bag", payload, {"README.txt": b"hi\n"}, {"Bagging-Date": "2026-11-26"})
    for item in payload:
        copy = tmp_path / "bag" / item.bag_path
        assert not os.path.samestat(copy.stat(), item.source.stat())
        assert copy.read_bytes() == item.source.read_bytes()
        assert copy.stat().st_mode & 0o777 == 0o444
    assert len(synced) >= len(payload) + 5


def test_a_wrong_known_hash_fails_validation_naming_the_file(dock: Dock, tmp_path: Path) -> None:
    payload = _payload(dock)
    bad = PayloadFile(payload[1].source, payload[1].bag_path, "0" * 64, payload[1].size)
    with pytest.raises(ArchiveError, match=r"data/x/\d+\.mp4 sha256 validation failed"):
        write_bag(tmp_path / "bag", [payload[0], bad], {}, {})
    short = PayloadFile(payload[0].source, "data/y.mp4", payload[0].sha256, payload[0].size + 1)
    with pytest.raises(ArchiveError, match=r"data/y\.mp4: store object .* has"):
        write_bag(tmp_path / "bag2", [short], {}, {})


def test_write_bag_refuses_bad_requests(dock: Dock, tmp_path: Path) -> None:
    payload = _payload(dock)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    for staging, tags, info, match in (
        (tmp_path / "busy", {}, {}, "absent or empty"),
        (tmp_path / "a", {"data/x.txt": b""}, {}, "cannot be a tag file"),
        (tmp_path / "b", {"bagit.txt": b""}, {}, "cannot be a tag file"),
        (tmp_path / "c", {"dock:d/x.txt": b""}, {}, "not disc-safe"),
        (tmp_path / "d", {}, {"Bad: label": "x"}, "invalid bag-info label"),
        (tmp_path / "e", {}, {"Label": "two\nlines"}, "one line"),
    ):
        with pytest.raises(ArchiveError, match=match):
            write_bag(staging, payload, tags, info)


def test_readme_chinese_first_then_english_and_windows_friendly(staged: Staged) -> None:
    raw = (staged.bag / "README.txt").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw[3:].decode("utf-8")
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")
    assert text.index("中文") < text.index("English")
    for needle in (
        staged.label,
        "sha256sum -c manifest-sha256.txt",
        "certutil -hashfile",
        POWERSHELL,
        "pip install cryptography",
        "python3 verify.py",
        "--key",
        "1 of 2",
        "dockd/archive-test",
    ):
        assert needle in text, needle
    info = {"Payload-Oxum": "1234.5", "Bag-Count": "2 of 5"}
    plain = readme_text("L", info)
    assert "5 个文件，共 1234 字节" in plain and "5 files, 1234 bytes" in plain
    assert "第 2 / 5 张" in plain
    assert readme_bytes("L", info) == b"\xef\xbb\xbf" + plain.replace("\n", "\r\n").encode()


def test_disc_tag_files_refuse_non_canonical_entries(dock: Dock) -> None:
    from dockd.archive.bag import disc_tag_files

    with pytest.raises(ArchiveError, match="canonical"):
        disc_tag_files(
            recordings=[],
            entries=[b'{"seq": 1}'],
            tree_size=1,
            proofs={},
            checkpoint="",
            keys=[],
            readme=b"",
        )
    digest = hashlib.sha256(b"").hexdigest()
    with pytest.raises(ArchiveError, match="bag_path"):
        disc_tag_files(
            recordings=[{"id": 1, "sha256": digest}],
            entries=[],
            tree_size=1,
            proofs={},
            checkpoint="",
            keys=[],
            readme=b"",
        )
