"""Docking a real camera file system: FAT32 (and exFAT) images under FUSE, real CLI.

The camera is a FAT32 image made by mkfs.vfat and filled by mtools, mounted
read-write by fusefat; dockd runs as its own process exactly as the dock
runs it. What the ingest left on the medium is then read back with mtools,
straight from the image and without FUSE.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.demo import gat947_name
from tests.volumes import (
    EXFAT_TOOLS,
    FAT_TOOLS,
    exfat_mount,
    fat_files,
    fat_list,
    fat_put,
    fat_read,
    fusefat_mount,
    loop_device,
    make_fat32_image,
    missing_tools,
    needs_root_fuse,
    run,
    run_dockd,
    write_config,
)

pytestmark = [pytest.mark.root, needs_root_fuse(*FAT_TOOLS)]

ZONE = "Asia/Shanghai"
SETTINGS = b"RESOLUTION=1080P\r\nLOOP=OFF\r\n"


def _names(count: int) -> list[str]:
    """GA/T 947 names of recordings made a few hours ago (never late: the CLI's clock is real)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)
    return [
        gat947_name("012345", "DSJ0001", start + timedelta(minutes=10 * i), i + 1, ZONE)
        for i in range(count)
    ]


def _camera_layout(clip_bank: list[Path]) -> dict[str, bytes]:
    """rel path -> bytes: four real clips in two folders, one empty clip, one settings file."""
    n = _names(5)
    return {
        f"DCIM/100MEDIA/{n[0]}": clip_bank[0].read_bytes(),
        f"DCIM/100MEDIA/{n[1]}": clip_bank[1].read_bytes(),
        f"DCIM/100MEDIA/{n[2]}": clip_bank[2].read_bytes(),
        f"DCIM/101MEDIA/{n[3]}": clip_bank[3].read_bytes(),
        f"DCIM/100MEDIA/{n[4]}": b"",  # battery died as the recording started
    }


def _fill_image(image: Path, clips: dict[str, bytes]) -> None:
    for rel, data in clips.items():
        fat_put(image, rel, data)
    fat_put(image, "DCIM/100MEDIA/SETTINGS.TXT", SETTINGS)


def _fat_camera(tmp_path: Path, clip_bank: list[Path]) -> tuple[Path, dict[str, bytes], Path, Path]:
    """A FAT32 camera image with the standard layout: (image, clips, state dir, mount point)."""
    image = make_fat32_image(tmp_path / "cam.img")
    clips = _camera_layout(clip_bank)
    _fill_image(image, clips)
    return image, clips, tmp_path / "state", tmp_path / "mnt"


def _ingest(cfg: Path, state: Path, mnt: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = run_dockd(cfg, state, "ingest", mnt, "--serial", "CAM-FAT-01", "--json", *extra)
    assert proc.stdout.strip(), f"no JSON report; stderr: {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def _verify(cfg: Path, state: Path) -> dict[str, Any]:
    proc = run_dockd(cfg, state, "verify", "--json")
    report: dict[str, Any] = json.loads(proc.stdout)
    assert proc.returncode == 0, report["problems"]
    assert report["ok"]
    return report


def _check_store(state: Path, report: dict[str, Any], clips: dict[str, bytes]) -> None:
    by_path = {r["source_path"]: r for r in report["recordings"]}
    assert set(by_path) == set(clips)
    for rel, data in clips.items():
        rec = by_path[rel]
        assert rec["sha256"] == hashlib.sha256(data).hexdigest()
        assert rec["size"] == len(data)
        assert (state / "store" / rec["store_path"]).read_bytes() == data
    assert not list((state / "store" / "tmp").iterdir()), "no partial copies left"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return write_config(tmp_path / "dockd.toml", change_retry_delay=0, min_free_bytes=0)


def test_fat32_docking_end_to_end(tmp_path: Path, cfg: Path, clip_bank: list[Path]) -> None:
    """Invariants 1 and 5 on a real FAT32 medium: every clip (the empty one too) is
    ingested, proven in the store and only then deleted from the camera; the
    non-footage file is skipped and left alone."""
    image, clips, state, mnt = _fat_camera(tmp_path, clip_bank)

    with fusefat_mount(image, mnt):
        code, report = _ingest(cfg, state, mnt)

    assert code == 3, "exit 3: everything ingested, the empty clip is flagged"
    assert report["state"] == "done"
    assert report["counts"] == {
        "ingested": 5,
        "duplicates": 0,
        "flagged": 1,
        "skipped": 1,
        "failed": 0,
        "wiped": 5,
        "wipe_failed": 0,
    }
    assert report["skipped"] == [
        {"source_path": "DCIM/100MEDIA/SETTINGS.TXT", "reason": "not a media file extension"}
    ]
    flags = {r["source_path"]: r["flags"] for r in report["recordings"]}
    assert flags == {
        rel: ["empty", "unassigned_device"] if not data else ["unassigned_device"]
        for rel, data in clips.items()
    }
    assert all(r["wiped"] for r in report["recordings"])
    _check_store(state, report, clips)

    # The medium itself, read without FUSE: clips gone, settings untouched.
    assert fat_list(image, "DCIM/100MEDIA") == {"SETTINGS.TXT"}
    assert fat_list(image, "DCIM/101MEDIA") == set(), "emptied folders stay, empty"
    assert fat_files(image) == {"DCIM/100MEDIA/SETTINGS.TXT"}
    assert fat_read(image, "DCIM/100MEDIA/SETTINGS.TXT") == SETTINGS

    result = _verify(cfg, state)
    assert (result["recordings"], result["objects"]) == (5, 5)


def test_fat32_second_docking_ingests_nothing_twice(
    tmp_path: Path, cfg: Path, clip_bank: list[Path]
) -> None:
    """Invariant 4 on a real FAT32 medium: docking the same camera again (after a
    keep-source docking, with a fresh mount each time) adds no recording; the
    files already proven are then wiped as duplicates."""
    image, clips, state, mnt = _fat_camera(tmp_path, clip_bank)

    with fusefat_mount(image, mnt):
        code, first = _ingest(cfg, state, mnt, "--keep-source")
    assert code == 3
    assert (first["counts"]["ingested"], first["counts"]["wiped"]) == (5, 0)
    assert fat_files(image) == {*clips, "DCIM/100MEDIA/SETTINGS.TXT"}, "all kept"
    _check_store(state, first, clips)

    # Docked again: a new mount of the same medium.
    with fusefat_mount(image, mnt):
        code, second = _ingest(cfg, state, mnt)
    assert code == 0, "nothing new, nothing failed"
    assert second["counts"]["ingested"] == 0
    assert second["counts"]["duplicates"] == 5
    assert second["counts"]["wiped"] == 5
    ids = {r["source_path"]: r["id"] for r in first["recordings"]}
    assert {r["source_path"]: r["id"] for r in second["recordings"]} == ids, (
        "the duplicates are the recordings of the first docking"
    )
    assert fat_files(image) == {"DCIM/100MEDIA/SETTINGS.TXT"}

    with fusefat_mount(image, mnt):
        code, third = _ingest(cfg, state, mnt)
    assert code == 0
    assert third["counts"]["ingested"] == third["counts"]["duplicates"] == 0

    listed = json.loads(run_dockd(cfg, state, "list", "--json").stdout)
    assert sorted(r["id"] for r in listed) == sorted(ids.values())
    result = _verify(cfg, state)
    assert (result["recordings"], result["objects"]) == (5, 5)


@pytest.mark.skipif(bool(missing_tools(*EXFAT_TOOLS)), reason=f"needs {', '.join(EXFAT_TOOLS)}")
def test_exfat_docking_end_to_end(tmp_path: Path, cfg: Path, clip_bank: list[Path]) -> None:
    """Invariants 1 and 4 on a real exFAT medium (exfat-fuse on a loop device):
    everything ingested and wiped; a second docking finds nothing to ingest."""
    image = tmp_path / "ex.img"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    clips = _camera_layout(clip_bank)
    state, mnt = tmp_path / "state", tmp_path / "mnt"
    with loop_device(image) as device:
        run("mkfs.exfat", "-L", "CAMERA", device)
        with exfat_mount(device, mnt):  # the camera records
            for rel, data in clips.items():
                (mnt / rel).parent.mkdir(parents=True, exist_ok=True)
                (mnt / rel).write_bytes(data)
            (mnt / "DCIM/100MEDIA/SETTINGS.TXT").write_bytes(SETTINGS)

        with exfat_mount(device, mnt):  # docked
            code, report = _ingest(cfg, state, mnt)
        assert code == 3
        assert report["counts"]["ingested"] == 5
        assert report["counts"]["wiped"] == 5
        assert report["counts"]["failed"] == report["counts"]["wipe_failed"] == 0
        _check_store(state, report, clips)

        with exfat_mount(device, mnt):  # docked again
            assert sorted(p.name for p in (mnt / "DCIM/100MEDIA").iterdir()) == ["SETTINGS.TXT"]
            assert not list((mnt / "DCIM/101MEDIA").iterdir())
            assert (mnt / "DCIM/100MEDIA/SETTINGS.TXT").read_bytes() == SETTINGS
            code, again = _ingest(cfg, state, mnt)
        assert code == 0
        assert again["counts"]["ingested"] == again["counts"]["duplicates"] == 0
    result = _verify(cfg, state)
    assert (result["recordings"], result["objects"]) == (5, 5)


@pytest.fixture
def evicting_ffprobe(tmp_path: Path) -> Path:
    """An ffprobe that first evicts unused dentries and inodes, as memory pressure does.

    Probing runs between a file's copy and the deletion of its camera copy.
    Writing 2 to drop_caches frees only reclaimable dentries and inodes (no
    page cache, nothing dirty): what the kernel's shrinkers do anyway while
    gigabytes of footage stream through. Skips if the kernel does not allow it.
    """
    try:
        with open("/proc/sys/vm/drop_caches", "w", encoding="ascii") as f:
            f.write("2")
    except OSError as exc:
        pytest.skip(f"cannot evict dentries/inodes here: {exc}")
    script = tmp_path / "ffprobe-under-memory-pressure"
    real = shutil.which("ffprobe") or "ffprobe"
    script.write_text(f'#!/bin/sh\necho 2 > /proc/sys/vm/drop_caches\nexec {real} "$@"\n')
    script.chmod(0o755)
    return script


def test_fat32_inode_renumbering_does_not_block_wipe(
    tmp_path: Path, clip_bank: list[Path], evicting_ffprobe: Path
) -> None:
    """Invariant 1 (the camera is cleared once each file is proven): a clip whose
    inode was evicted and renumbered between copy and wipe, bytes untouched, is
    still recognised as the same file and deleted from the camera."""
    cfg = write_config(
        tmp_path / "dockd.toml",
        change_retry_delay=0,
        min_free_bytes=0,
        ffprobe=str(evicting_ffprobe),
    )
    image, clips, state, mnt = _fat_camera(tmp_path, clip_bank)
    with fusefat_mount(image, mnt):
        code, report = _ingest(cfg, state, mnt)
    assert report["counts"]["ingested"] == 5
    _check_store(state, report, clips)
    assert report["wipe_failed"] == []
    assert report["counts"]["wiped"] == 5
    assert fat_files(image) == {"DCIM/100MEDIA/SETTINGS.TXT"}
    assert code == 3
