"""Fixity audits: slices cover the store, oldest-checked first; mismatches are loud."""

from __future__ import annotations

import os
from pathlib import Path

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.integrity.chain import LogEntry
from dockd.runner.session import run_session
from dockd.service import Service
from tests.conftest import put


def _service_with(tmp_path: Path, config: Config, clock: FixedClock, n: int) -> Service:
    cam = tmp_path / "cam"
    for i in range(n):
        put(cam, f"DCIM/{i}.mp4", f"clip {i}".encode())
    svc = Service(config, clock)
    run_session(svc, cam, "CAM1", make_profile("gat947", config.profiles), wipe=True)
    return svc


def test_slices_cover_the_whole_store_oldest_first(
    tmp_path: Path, config: Config, clock: FixedClock
) -> None:
    from datetime import timedelta

    with _service_with(tmp_path, config, clock, 6) as svc:
        seen: list[str] = []
        for _ in range(3):
            report = svc.audit(fraction=1 / 3)
            assert report.ok and report.checked == 2
            entry = LogEntry.from_bytes(svc.log_entry(report.log_seq) or b"")
            assert entry.kind == "audit.done" and entry.data["checked"] == 2
            seen += [entry.data["first"], entry.data["last"]]
            clock.advance(timedelta(days=1))
        assert len(set(seen)) == 6, "three thirds cover every object once"
        assert svc.verify().ok


def test_mismatch_is_reported_and_not_repaired(
    tmp_path: Path, config: Config, clock: FixedClock
) -> None:
    with _service_with(tmp_path, config, clock, 2) as svc:
        victim = svc.recordings()[0]
        path = svc.store.root / victim.store_path
        os.chmod(path, 0o600)
        path.write_bytes(b"tampered")
        os.chmod(path, 0o444)
        report = svc.audit(fraction=1.0)
        assert not report.ok
        assert report.failures[0]["sha256"] == victim.sha256
        assert report.failures[0]["recordings"] == [victim.id]
        entry = LogEntry.from_bytes(svc.log_entry(report.log_seq) or b"")
        assert entry.data["failures"][0]["sha256"] == victim.sha256
        assert path.read_bytes() == b"tampered", "an audit never rewrites evidence"
