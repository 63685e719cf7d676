"""/metrics after a docking, parsed with prometheus_client's own parser: the counters
match the catalog; served over HTTP by the screen's server; the textfile twin."""

from __future__ import annotations

import dataclasses
import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from dockd.clock import FixedClock
from dockd.config import Config, DaemonConfig
from dockd.devices.profiles import make_profile
from dockd.runner.daemon import Daemon
from dockd.runner.front import HttpServer
from dockd.runner.metrics import registry, render, write_textfile
from dockd.runner.screen.app import make_app
from dockd.runner.session import run_session
from dockd.runner.slots import SlotState
from dockd.service import Service
from tests.conftest import put


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _docked(config: Config, clock: FixedClock, tmp_path: Path, clips: list[Path]) -> Daemon:
    config = dataclasses.replace(config, daemon=DaemonConfig(runtime_dir=tmp_path / "run"))
    daemon = Daemon(config, clock=clock, udev=False)
    service = daemon.service = Service(config, clock)
    camera = tmp_path / "cam"
    for i, clip in enumerate(clips):
        put(camera, f"DCIM/{i}.mp4", clip)
    put(camera, "DCIM/broken.mp4", b"\x00\x00\x00\x18ftypmp42 not a movie")
    run_session(service, camera, "DSJ0001", make_profile("gat947", config.profiles), wipe=True)
    service.audit(1.0)
    daemon._slots["usb-1-2"] = SlotState("usb-1-2", "DSJ0001", "/dev/sdb1", state="copying",
                                         rate_bps=12.5e6)  # fmt: skip
    return daemon


def test_the_counters_match_the_catalog(
    config: Config, clock: FixedClock, tmp_path: Path, clip_bank: list[Path]
) -> None:
    daemon = _docked(config, clock, tmp_path, clip_bank[:3])
    service = daemon.service
    assert service is not None
    try:
        text = daemon.metrics_text().decode()
        got = _samples(text)
        recordings = service.recordings()
        assert got[("dockd_ingested_files_total", ())] == len(recordings) == 4
        assert got[("dockd_ingested_bytes_total", ())] == sum(r.size for r in recordings)
        unreadable = sum("unreadable_media" in r.flags for r in recordings)
        assert got[("dockd_flagged_recordings", (("flag", "unreadable_media"),))] == unreadable == 1
        assert got[("dockd_late_recordings", ())] == sum(r.late for r in recordings)
        assert got[("dockd_log_entries", ())] == service.catalog.head()[0]
        assert got[("dockd_last_audit_failures", ())] == 0
        assert got[("dockd_last_audit_timestamp_seconds", ())] == clock.now().timestamp()
        assert got[("dockd_docked_cameras", ())] == 1
        assert got[("dockd_slot_bytes_per_second", (("slot", "usb-1-2"),))] == 12.5e6
        assert got[("dockd_slot_state", (("slot", "usb-1-2"), ("state", "copying")))] == 1
        assert got[("dockd_store_free_bytes", ())] > 0
        assert ("dockd_replication_queue", ()) not in got  # replication off: not reported
    finally:
        service.close()


def test_metrics_over_http_and_as_a_textfile(
    config: Config, clock: FixedClock, tmp_path: Path, clip_bank: list[Path]
) -> None:
    daemon = _docked(config, clock, tmp_path, clip_bank[:1])
    assert daemon.service is not None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = HttpServer.tcp(
        make_app(daemon.status, daemon.health, clock, daemon.metrics_text), "127.0.0.1", port
    )
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            served = _samples(answer.read().decode())
        assert served[("dockd_ingested_files_total", ())] == 2
        out = tmp_path / "textfile" / "dockd.prom"
        out.parent.mkdir()
        write_textfile(registry(daemon.status, daemon.service.figures, clock), out)
        written = _samples(out.read_text())
        assert set(written) == set(served)  # the same families and labels
        for counter in ("dockd_ingested_files_total", "dockd_ingested_bytes_total"):
            assert written[(counter, ())] == served[(counter, ())]
        assert [p.name for p in out.parent.iterdir()] == ["dockd.prom"]  # no temp left
        assert render(registry(daemon.status, daemon.service.figures, clock)).startswith(b"# HELP")
    finally:
        server.stop()
        daemon.service.close()
