"""`verify` and `audit` report their work to a Meter: stages, and bytes per chunk hashed."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.ingest.scanner import scan
from dockd.ingest.volume import Volume
from dockd.progress import NULL_METER, Meter
from dockd.runner.session import run_session
from dockd.service import Service
from dockd.service.values import Staged
from tests.conftest import put

BUFFER = 64 << 10
BIG = 5 << 20


class MeterLog:
    """A Meter that keeps, per stage, its name, total, unit and every advance."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, int | None, str, list[int]]] = []

    def stage(self, name: str, total: int | None, unit: str = "bytes") -> None:
        self.stages.append((name, total, unit, []))

    def advance(self, n: int) -> None:
        self.stages[-1][3].append(n)


@pytest.fixture
def svc(
    tmp_path: Path, config: Config, clock: FixedClock, clip_bank: list[Path]
) -> Iterator[Service]:
    small = dataclasses.replace(
        config, ingest=dataclasses.replace(config.ingest, buffer_size=BUFFER)
    )
    with Service(small, clock) as service:
        cam = tmp_path / "cam"
        put(cam, "DCIM/big.mp4", os.urandom(BIG))
        put(cam, "DCIM/clip.mp4", clip_bank[0])
        run_session(service, cam, "SER1", make_profile("gat947", small.profiles), wipe=False)
        yield service


def _store_bytes(service: Service) -> int:
    return sum(path.stat().st_size for _, path in service.store.iter_objects())


def test_meters_satisfy_the_protocol() -> None:
    log: Meter = MeterLog()
    NULL_METER.stage("anything", None)
    NULL_METER.advance(1)
    log.stage("x", 1)
    log.advance(1)


def test_verify_reports_the_log_then_the_store_by_bytes(svc: Service) -> None:
    meter = MeterLog()
    report = svc.verify(meter)
    assert report.ok, report.problems
    (log_name, log_total, log_unit, log_moves), store = meter.stages
    assert (log_name, log_total, log_unit) == ("checking the log", None, "entries")
    assert sum(log_moves) == report.entries
    name, total, unit, moves = store
    assert name == "re-hashing 2 store files" and unit == "bytes"
    assert total == sum(moves) == report.bytes_hashed == _store_bytes(svc)
    assert len(moves) >= BIG // BUFFER, "the bar moves within the big object"
    assert all(0 < n <= BUFFER for n in moves)


def test_verify_counts_orphans_in_the_total_it_hashes(svc: Service, tmp_path: Path) -> None:
    """An object no row refers to is hashed too: it is in the total, not in bytes_hashed."""
    cam = tmp_path / "later"
    put(cam, "DCIM/x.mp4", b"x" * 100_000)
    # Staged but never committed: what a crash between rename and commit leaves.
    session = svc.begin_session("SER2", "gat947", str(cam), wipe=False)
    with Volume(cam) as volume:
        found = scan(volume, make_profile("gat947", svc.config.profiles), 8).files[0]
        staged = svc.stage_file(session, volume, found)
    assert isinstance(staged, Staged)
    svc.prove_staged(staged)  # read back and renamed into the store; no row
    meter = MeterLog()
    report = svc.verify(meter)
    _, total, _, moves = meter.stages[-1]
    assert report.orphans and total == sum(moves) == report.bytes_hashed + 100_000


def test_audit_reports_the_bytes_of_its_slice(svc: Service) -> None:
    meter = MeterLog()
    report = svc.audit(1.0, meter)
    assert report.ok
    [(name, total, unit, moves)] = meter.stages
    assert name == "auditing 2 store objects" and unit == "bytes"
    assert total == sum(moves) == report.bytes_hashed == _store_bytes(svc)
    assert len(moves) >= BIG // BUFFER


def test_audit_of_a_missing_object_still_adds_up(svc: Service) -> None:
    """A vanished object is reported, and neither counts in the total nor moves the bar."""
    big = max(svc.recordings(), key=lambda r: r.size)
    path = svc.store.object_path(big.sha256)
    path.chmod(0o600)
    path.unlink()
    meter = MeterLog()
    report = svc.audit(1.0, meter)
    assert not report.ok
    [(_, total, _, moves)] = meter.stages
    assert total == sum(moves) == report.bytes_hashed == _store_bytes(svc)
