"""Real xorriso images: build, list (Rock Ridge and Joliet), extract, label, burn, read back."""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockd.archive import iso
from dockd.archive.bag import ArchiveError, PayloadFile, write_bag
from dockd.archive.check import verify_disc
from dockd.archive.iso import (
    XorrisoError,
    build_iso,
    burn,
    extract_iso,
    find_burners,
    iso_volume_id,
    list_iso,
    read_back,
    sha256_in_iso,
    sha256_of_drive,
    volume_label,
)
from tests.archive.discs import Staged


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).digest()
        for p in root.rglob("*")
        if p.is_file()
    }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_image_lists_extracts_and_carries_the_label(
    staged: Staged, disc_iso: Path, extracted: Path
) -> None:
    expected = sorted(
        (p.relative_to(staged.bag).as_posix(), p.stat().st_size)
        for p in staged.bag.rglob("*")
        if p.is_file()
    )
    assert list_iso(disc_iso) == expected
    # Windows reads the Joliet tree: the same names, Chinese and 100-character ones too.
    assert list_iso(disc_iso, joliet=True) == expected
    assert max(len(name.split("/")[-1]) for name, _ in expected) == 100
    assert volume_label(disc_iso) == staged.label
    assert _tree(extracted) == _tree(staged.bag)
    # Rock Ridge with -r: read-only files, readable by everyone.
    for path in extracted.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o444
    assert not disc_iso.with_name(disc_iso.name + ".part").exists()


def test_hash_straight_out_of_the_image(staged: Staged, disc_iso: Path) -> None:
    for item in staged.payload:
        assert sha256_in_iso(disc_iso, item.bag_path) == item.sha256
    with pytest.raises(XorrisoError):
        sha256_in_iso(disc_iso, "data/nothing-here.mp4")


def test_names_survive_a_c_locale(staged: Staged, tmp_path: Path) -> None:
    """xorriso writes '_' for non-ASCII Joliet names under LC_ALL=C unless told UTF-8."""
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "LANG": "C"}
    code = (
        "import sys; from pathlib import Path; from dockd.archive.iso import build_iso, list_iso\n"
        f"out = build_iso(Path({str(staged.bag)!r}), Path({str(tmp_path / 'c.iso')!r}), 'C')\n"
        "print(list_iso(out, joliet=True) == list_iso(out))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=Path.cwd()
    )
    assert proc.stdout.strip() == "True", proc.stderr


def test_volume_label_rules(staged: Staged, tmp_path: Path) -> None:
    for bad in ("lowercase", "A" * 33, "", "DISC-1", "DISC 1"):
        with pytest.raises(ArchiveError, match="volume label"):
            build_iso(staged.bag, tmp_path / "x.iso", bad)
    assert iso_volume_id("dockd 2026-11-26 #1") == "DOCKD_2026_11_26__1"
    assert len(iso_volume_id("x" * 50)) == 32
    with pytest.raises(ArchiveError):
        iso_volume_id("——")


def test_an_interrupted_build_leaves_nothing_that_looks_complete(
    staged: Staged, tmp_path: Path
) -> None:
    out = tmp_path / "disc.iso"
    out.with_name("disc.iso.part").write_bytes(b"stale part of an earlier build")
    with pytest.raises(XorrisoError, match="did not finish"):
        build_iso(staged.bag, out, "DISC", timeout=0.001)
    assert not out.exists()
    assert not out.with_name("disc.iso.part").exists()
    with pytest.raises(ArchiveError, match="not a folder"):
        build_iso(tmp_path / "missing", out, "DISC")


def test_extract_refuses_a_busy_target(disc_iso: Path, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(ArchiveError, match="absent or empty"):
        extract_iso(disc_iso, tmp_path / "busy")
    # xorriso itself would read these as an empty image called ISOIMAGE, exit 0.
    for not_an_image in (tmp_path / "busy" / "file", tmp_path / "missing.iso"):
        with pytest.raises(ArchiveError, match=r"not an ISO 9660 image|cannot read"):
            list_iso(not_an_image)
        with pytest.raises(ArchiveError, match=r"not an ISO 9660 image|cannot read"):
            volume_label(not_an_image)
    assert not (tmp_path / "missing.iso").exists()


def test_burn_to_a_pseudo_drive_and_read_back(disc_iso: Path, tmp_path: Path) -> None:
    drive = f"stdio:{tmp_path / 'drive.img'}"
    size = disc_iso.stat().st_size
    burn(disc_iso, drive)
    written = _sha256(disc_iso)
    assert sha256_of_drive(drive, size) == written
    copy = tmp_path / "read-back.iso"
    assert read_back(drive, size, copy) == written
    assert _sha256(copy) == written
    assert not copy.with_name("read-back.iso.part").exists()
    report = verify_disc(copy)  # what was read back is a complete, valid disc
    assert report.ok, report.problems
    # Asking for more than was burned (past the medium's end) is a read error, not zeros.
    with pytest.raises(XorrisoError, match="media read error"):
        sha256_of_drive(drive, size + (8 << 20))
    with pytest.raises(XorrisoError):
        read_back(drive, size + (8 << 20), tmp_path / "too-long.iso")
    assert not (tmp_path / "too-long.iso").exists()
    # Again over the written pseudo-medium, with the options a real burner takes.
    burn(disc_iso, drive, blank=True, eject=True, speed="4")
    assert sha256_of_drive(drive, size) == written


def test_a_changed_burn_is_seen_on_read_back(disc_iso: Path, tmp_path: Path) -> None:
    image = tmp_path / "drive.img"
    drive = f"stdio:{image}"
    burn(disc_iso, drive)
    with open(image, "r+b") as medium:  # a bit flips on the medium
        medium.seek(disc_iso.stat().st_size // 2)
        byte = medium.read(1)
        medium.seek(-1, os.SEEK_CUR)
        medium.write(bytes([byte[0] ^ 1]))
    assert sha256_of_drive(drive, disc_iso.stat().st_size) != _sha256(disc_iso)


def test_drive_addresses_and_burners(disc_iso: Path, tmp_path: Path) -> None:
    for bad in ("drive.img", "stdio:relative.img", "/dev/sr0 --gracetime=0"):
        with pytest.raises(ArchiveError, match="drive"):
            burn(disc_iso, bad)
    with pytest.raises(ArchiveError, match="no such image"):
        burn(disc_iso.with_name("missing.iso"), f"stdio:{tmp_path / 'never-written.img'}")
    assert not (tmp_path / "never-written.img").exists()
    burners = find_burners()
    assert all(d.startswith("/dev/") for d in burners)
    if not glob.glob("/dev/sr*"):
        assert burners == []


def test_missing_xorriso_is_a_clear_error(disc_iso: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iso, "XORRISO", "/nonexistent/xorriso")
    with pytest.raises(XorrisoError, match="not installed"):
        volume_label(disc_iso)
    with pytest.raises(XorrisoError, match="not installed"):
        find_burners()


@pytest.mark.slow
def test_a_file_over_4_gib_goes_through_bag_and_image(tmp_path: Path) -> None:
    """Slow (about a minute): 4 GiB are hashed three times and written once.

    ISO level 3 stores the file as several extents; the listing shows its
    whole size and the hash read straight from the extents is the source's.
    """
    size = (4 << 30) + 12345
    source = tmp_path / "big.mp4"
    with open(source, "wb") as f:  # sparse: zeros cost no disk, then real bytes at the end
        f.truncate(size)
        f.seek(size - 64)
        f.write(b"the end of a very long recording, after 4 GiB".ljust(64, b"."))
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    sha = digest.hexdigest()
    item = PayloadFile(source, "data/u/o/2026-11-25/1_big.mp4", sha, size)
    out = tmp_path / "BIG.iso"
    try:
        bag = write_bag(tmp_path / "bag", [item], {}, {"External-Identifier": "BIG"})
        build_iso(bag, out, "BIG")
        assert out.stat().st_size > size
        assert dict(list_iso(out))["data/u/o/2026-11-25/1_big.mp4"] == size
        assert dict(list_iso(out, joliet=True))["data/u/o/2026-11-25/1_big.mp4"] == size
        sections = iso.iso_sections(out, item.bag_path)
        assert len(sections) == 2 and sum(length for _, length in sections) == size
        assert sha256_in_iso(out, item.bag_path) == sha
    finally:
        out.unlink(missing_ok=True)  # do not leave 4 GiB in pytest's kept temp folders
