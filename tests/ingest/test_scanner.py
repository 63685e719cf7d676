"""Hostile volumes are contained (invariant 6): the scanner and safe file access."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockd.config import DEFAULT_SYSTEM_DIRS, ProfileConfig
from dockd.devices.profiles import make_profile
from dockd.errors import SourceError
from dockd.ingest.scanner import scan
from dockd.ingest.volume import Volume
from dockd.runner.session import run_session
from dockd.service import Service
from tests.conftest import put

GAT = make_profile("gat947", ProfileConfig())


def scanned(root: Path, max_depth: int = 32) -> tuple[dict[bytes, int], dict[bytes, str]]:
    with Volume(root) as volume:
        result = scan(volume, GAT, max_depth)
    return {f.rel_path: f.identity.size for f in result.files}, {
        s.rel_path: s.reason for s in result.skipped
    }


def test_links_fifos_sockets_and_devices_are_reported_not_followed(tmp_path: Path) -> None:
    cam, outside = tmp_path / "cam", tmp_path / "outside"
    secret = put(outside, "secret.mp4", b"not on the camera")
    put(cam, "DCIM/real.mp4", b"footage")
    (cam / "DCIM" / "link.mp4").symlink_to(secret)
    (cam / "DCIM" / "dirlink").symlink_to(outside, target_is_directory=True)
    (cam / "DCIM" / "loop").symlink_to(cam / "DCIM" / "loop")
    (cam / "DCIM" / "dangling.mp4").symlink_to(tmp_path / "nowhere")
    os.mkfifo(cam / "DCIM" / "fifo.mp4")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(cam / "DCIM" / "sock.mp4"))
    if os.geteuid() == 0:
        os.mknod(cam / "DCIM" / "null.mp4", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    files, skipped = scanned(cam)
    sock.close()
    assert files == {b"DCIM/real.mp4": 7}
    assert skipped[b"DCIM/link.mp4"] == "symbolic link (not followed)"
    assert skipped[b"DCIM/dirlink"] == "symbolic link (not followed)"
    assert skipped[b"DCIM/loop"] == "symbolic link (not followed)"
    assert skipped[b"DCIM/dangling.mp4"] == "symbolic link (not followed)"
    assert skipped[b"DCIM/fifo.mp4"] == "FIFO (not opened)"
    assert skipped[b"DCIM/sock.mp4"] == "socket (not opened)"
    if os.geteuid() == 0:
        assert skipped[b"DCIM/null.mp4"] == "device file (not opened)"


def test_hostile_names_are_kept_byte_exact(tmp_path: Path, service: Service) -> None:
    cam = tmp_path / "cam"
    long_name = b"L" * 251 + b".mp4"
    names = [
        b"DCIM/\xff\xfe\x80.mp4",
        b"DCIM/....mp4",
        b"DCIM/.. .mp4",
        b"DCIM/..mp4",
        b"DCIM/" + long_name,
        b"DCIM/\xe4\xb8\xad\xe6\x96\x87.MP4",
        b"DCIM/a\nb.mp4",
        b"DCIM/-rf.mp4",
    ]
    for i, name in enumerate(names):
        put(cam, name, f"clip {i}".encode())
    report = run_session(service, cam, "SER1", GAT, wipe=True)
    assert report.counts()["ingested"] == len(names)
    assert {r.source_path for r in service.recordings()} == set(names)
    assert report.counts()["wiped"] == len(names)
    assert not os.listdir(cam / "DCIM")
    assert sorted(os.listdir(tmp_path)) == ["cam", "state"], "nothing written outside"
    shown = {o.found.display for o in report.outcomes}
    assert "DCIM/\\xff\\xfe\\x80.mp4" in shown
    assert service.verify().ok


def test_depth_is_bounded(tmp_path: Path) -> None:
    cam = tmp_path / "cam"
    put(cam, "/".join(["d"] * 6) + "/deep.mp4", b"x")
    put(cam, "d/d/ok.mp4", b"y")
    files, skipped = scanned(cam, max_depth=4)
    assert files == {b"d/d/ok.mp4": 1}
    assert skipped == {b"d/d/d/d/d": "deeper than 4 folders"}


def test_folder_swapped_for_a_link_after_scan_does_not_escape(
    tmp_path: Path, service: Service
) -> None:
    """A directory replaced by a symlink between scan and copy is refused, not followed."""
    cam, outside = tmp_path / "cam", tmp_path / "outside"
    put(cam, "DCIM/sub/a.mp4", b"footage")
    put(outside, "a.mp4", b"SECRET")
    session = service.begin_session("SER1", "gat947", str(cam), wipe=True)
    with Volume(cam) as volume:
        found = scan(volume, GAT, 32).files
        (cam / "DCIM" / "sub" / "a.mp4").unlink()
        (cam / "DCIM" / "sub").rmdir()
        (cam / "DCIM" / "sub").symlink_to(outside, target_is_directory=True)
        with pytest.raises(SourceError):
            service.ingest_file(session, volume, GAT, found[0])
    assert service.recordings() == []
    assert (outside / "a.mp4").read_bytes() == b"SECRET"
    assert not list(service.store.tmp.iterdir())


def test_file_swapped_for_a_fifo_after_scan_is_refused_without_blocking(
    tmp_path: Path, service: Service
) -> None:
    cam = tmp_path / "cam"
    put(cam, "DCIM/a.mp4", b"footage")
    session = service.begin_session("SER1", "gat947", str(cam), wipe=True)
    with Volume(cam) as volume:
        found = scan(volume, GAT, 32).files
        (cam / "DCIM" / "a.mp4").unlink()
        os.mkfifo(cam / "DCIM" / "a.mp4")
        with pytest.raises(SourceError, match="no longer a regular file"):
            service.ingest_file(session, volume, GAT, found[0])


def test_file_vanished_after_scan_fails_that_file_only(tmp_path: Path, service: Service) -> None:
    cam = tmp_path / "cam"
    put(cam, "DCIM/a.mp4", b"a")
    put(cam, "DCIM/b.mp4", b"b")

    class Deleter:
        def start(self, files: int, total_bytes: int) -> None:
            (cam / "DCIM" / "a.mp4").unlink()

        def file_done(self, found: object) -> None:
            pass

        def phase(self, name: str) -> None:
            pass

    report = run_session(service, cam, "SER1", GAT, wipe=True, progress=Deleter())
    assert report.counts()["failed"] == 1 and report.counts()["ingested"] == 1
    assert "cannot open" in report.failed[0].reason
    assert report.exit_code == 4


names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.lists(names, min_size=0, max_size=3), names, st.sampled_from(["mp4", "txt", "lnk"])
        ),
        max_size=12,
    )
)
def test_scanner_finds_exactly_the_regular_media_files(
    tmp_path_factory: pytest.TempPathFactory, entries: list[tuple[list[bytes], bytes, str]]
) -> None:
    cam = tmp_path_factory.mktemp("cam")
    expected: set[bytes] = set()
    made: set[bytes] = set()
    for dirs, base, kind in entries:
        rel_dirs = b"/".join(dirs)
        full = os.path.join(
            os.fsencode(cam), rel_dirs, base + b"." + (b"mp4" if kind != "txt" else b"txt")
        )
        rel = os.path.relpath(full, os.fsencode(cam))
        try:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if os.path.lexists(full) or any(rel.startswith(m + b"/") for m in made):
                continue
            if kind == "lnk":
                os.symlink(b"/etc/passwd", full)
            else:
                with open(full, "wb") as fh:
                    fh.write(b"x")
        except (FileExistsError, NotADirectoryError):
            continue
        made.add(rel)
        system = {d.casefold() for d in DEFAULT_SYSTEM_DIRS}
        if kind == "mp4" and not any(os.fsdecode(d).casefold() in system for d in dirs):
            expected.add(rel)
    files, _ = scanned(cam)
    assert set(files) == expected


def _replace_keeping_stamp(path: Path, data: bytes, like: os.stat_result) -> None:
    """A new inode at `path` with the old size and mtime (FAT times have 2 s steps)."""
    tmp = path.with_name("new")
    tmp.write_bytes(data)
    os.utime(tmp, ns=(like.st_atime_ns, like.st_mtime_ns))
    os.rename(tmp, path)


def test_wipe_refuses_a_rewritten_file_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    """Invariant 1: a new inode is re-hashed before deletion; other bytes are kept."""
    import hashlib

    from dockd.ingest.volume import FileIdentity

    path = put(tmp_path, "DCIM/a.mp4", b"original")
    st = path.stat()
    sha = hashlib.sha256(b"original").hexdigest()
    _replace_keeping_stamp(path, b"REWRITE!", st)
    with (
        Volume(tmp_path) as volume,
        pytest.raises(SourceError, match="changed since it was copied"),
    ):
        volume.unlink_if_unchanged((b"DCIM", b"a.mp4"), FileIdentity.of(st), sha, 4096)
    assert path.read_bytes() == b"REWRITE!"
    _replace_keeping_stamp(path, b"original", st)  # renumbered inode, same bytes
    with Volume(tmp_path) as volume:
        volume.unlink_if_unchanged((b"DCIM", b"a.mp4"), FileIdentity.of(st), sha, 4096)
    assert not path.exists()
