"""Ingest progress moves by bytes within a file, not only when a whole file is done."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dockd.service.docking as service_module
from dockd.chunks import hash_fd
from dockd.clock import FixedClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.errors import SourceError
from dockd.ingest.copier import copy_verified
from dockd.ingest.scanner import FoundFile
from dockd.ingest.volume import Volume
from dockd.runner.session import ByteProgress, SessionReport, run_session
from dockd.service import Service
from tests.conftest import put

BUFFER = 64 << 10
BIG = 5 << 20  # 80 buffers: the threaded read-ahead path of read_chunks


class Recorder:
    """A ByteProgress that remembers every call, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def start(self, files: int, total_bytes: int) -> None:
        self.events.append(("start", total_bytes))

    def file_done(self, found: FoundFile) -> None:
        self.events.append(("done", found.display))

    def phase(self, name: str) -> None:
        self.events.append(("phase", name))

    def advance(self, n: int) -> None:
        self.events.append(("bytes", n))

    def amounts(self) -> list[int]:
        return [int(n) for kind, n in self.events if kind == "bytes"]  # type: ignore[call-overload]

    def total(self) -> int:
        return next(int(n) for kind, n in self.events if kind == "start")  # type: ignore[call-overload]


class FilesOnly:
    """The daemon's kind of Progress: no `advance`, whole files only."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def start(self, files: int, total_bytes: int) -> None:
        pass

    def file_done(self, found: FoundFile) -> None:
        self.done.append(found.display)

    def phase(self, name: str) -> None:
        pass


@pytest.fixture
def small_buffers(config: Config) -> Config:
    return dataclasses.replace(
        config, ingest=dataclasses.replace(config.ingest, buffer_size=BUFFER)
    )


@pytest.fixture
def svc(small_buffers: Config, clock: FixedClock) -> Iterator[Service]:
    with Service(small_buffers, clock) as service:
        yield service


def _big(cam: Path, name: str = "DCIM/big.mp4") -> Path:
    return put(cam, name, os.urandom(BIG))


def _session(svc: Service, cam: Path, progress: object, *, wipe: bool = False) -> SessionReport:
    profile = make_profile("gat947", svc.config.profiles)
    return run_session(svc, cam, "SER1", profile, wipe=wipe, progress=progress)  # type: ignore[arg-type]


def _running_totals(amounts: list[int]) -> list[int]:
    totals, done = [], 0
    for n in amounts:
        done += n
        totals.append(done)
    return totals


def test_hash_fd_and_copier_report_every_chunk(tmp_path: Path, svc: Service) -> None:
    source = _big(tmp_path / "cam")
    seen: list[int] = []
    fd = os.open(source, os.O_RDONLY)
    try:
        hash_fd(fd, BUFFER, seen.append)
    finally:
        os.close(fd)
    assert sum(seen) == BIG and len(seen) == BIG // BUFFER and max(seen) <= BUFFER
    copied: list[int] = []
    with Volume(tmp_path / "cam") as volume:
        copy = copy_verified(volume, (b"DCIM", b"big.mp4"), svc.store, BUFFER, None, copied.append)
    svc.store.discard_temp(copy.temp)
    assert copied == seen, "one call per chunk copied, none for the read-back"


def test_bar_moves_many_times_within_one_big_file(tmp_path: Path, svc: Service) -> None:
    cam = tmp_path / "cam"
    _big(cam)
    recorder = Recorder()
    assert isinstance(recorder, ByteProgress)
    report = _session(svc, cam, recorder)
    assert report.counts()["ingested"] == 1
    kinds = [kind for kind, _ in recorder.events]
    before_done = kinds[: kinds.index("done")].count("bytes")
    assert before_done >= BIG // BUFFER // 2, f"only {before_done} moves before the file was done"
    amounts = recorder.amounts()
    assert all(n > 0 for n in amounts)
    totals = _running_totals(amounts)
    assert totals == sorted(set(totals)), "byte counts only increase"
    assert totals[-1] == BIG == recorder.total()


def test_bytes_of_several_files_sum_to_the_total(
    tmp_path: Path, svc: Service, clip_bank: list[Path]
) -> None:
    cam = tmp_path / "cam"
    _big(cam, "DCIM/a.mp4")
    put(cam, "DCIM/b.mp4", clip_bank[0])
    put(cam, "DCIM/c.mp4", b"")  # empty: adds nothing, still done
    _big(cam, "DCIM/d.mp4")
    recorder = Recorder()
    report = _session(svc, cam, recorder, wipe=True)
    assert report.counts()["ingested"] == 4 and report.counts()["wiped"] == 4
    assert sum(recorder.amounts()) == recorder.total() == 2 * BIG + clip_bank[0].stat().st_size
    assert [kind for kind, _ in recorder.events].count("done") == 4


def test_a_retry_rewinds_and_still_ends_at_the_file_size(tmp_path: Path, svc: Service) -> None:
    """The file changes while it is copied: the bar goes back, and ends at its size."""
    cam = tmp_path / "cam"
    source = _big(cam)
    recorder = Recorder()
    touched = []

    def advance(n: int) -> None:
        if not touched:
            touched.append(n)
            st = source.stat()
            os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        Recorder.advance(recorder, n)

    recorder.advance = advance  # type: ignore[method-assign]
    report = _session(svc, cam, recorder)
    assert report.counts()["ingested"] == 1
    assert "source_changed" not in report.ingested[0].recording.flags
    amounts = recorder.amounts()
    assert any(n < 0 for n in amounts), "the retry started the file over"
    totals = _running_totals(amounts)
    assert min(totals) >= 0 and max(totals) <= BIG and totals[-1] == BIG


def test_a_duplicate_is_counted_once_while_it_is_rehashed(tmp_path: Path, svc: Service) -> None:
    cam = tmp_path / "cam"
    _big(cam)
    _session(svc, cam, None)
    recorder = Recorder()
    report = _session(svc, cam, recorder, wipe=True)  # re-hash the camera's copy, then the store's
    assert report.counts()["duplicates"] == 1 and report.counts()["wiped"] == 1
    amounts = recorder.amounts()
    assert len(amounts) >= BIG // BUFFER // 2 and sum(amounts) == BIG


def test_a_failed_file_still_completes_its_share(
    tmp_path: Path, svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    cam = tmp_path / "cam"
    _big(cam)
    _big(cam, "DCIM/bad.mp4")
    real = service_module.copy_verified

    def read_error_halfway(
        volume: Volume, rel_parts: tuple[bytes, ...], *args: Any, **kwargs: Any
    ) -> Any:
        if rel_parts[-1] != b"bad.mp4":
            return real(volume, rel_parts, *args, **kwargs)
        args[3](BIG // 2)  # the progress callback: half the file read, then the card fails
        raise SourceError("DCIM/bad.mp4: read error: Input/output error")

    monkeypatch.setattr(service_module, "copy_verified", read_error_halfway)
    recorder = Recorder()
    report = _session(svc, cam, recorder)
    assert (report.counts()["ingested"], report.counts()["failed"]) == (1, 1)
    assert sum(recorder.amounts()) == recorder.total() == 2 * BIG


def test_a_progress_without_advance_still_hears_of_whole_files(
    tmp_path: Path, svc: Service
) -> None:
    cam = tmp_path / "cam"
    _big(cam)
    files = FilesOnly()
    assert not isinstance(files, ByteProgress)
    report = _session(svc, cam, files)
    assert report.counts()["ingested"] == 1 and files.done == ["DCIM/big.mp4"]
