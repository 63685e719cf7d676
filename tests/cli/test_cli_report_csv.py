"""`dockd report compliance --format csv`, run as a process on a real state directory (R8).

What an analyst gets: UTF-8 with a byte-order mark (Excel reads 一中队 right), a
TOTAL row that is the sum of the rows, the period and as_of on every row, and
the overdue devices in a second file (`--out FILE` writes FILE-overdue.csv).

The CLI reads the real clock, so the footage is dated relative to the moment
the test runs (never a literal date): it passes on any day, and under faketime.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from dockd.clock import FixedClock, isoformat_utc, parse_utc
from dockd.config import load_config
from dockd.demo import gat947_name, make_clip
from dockd.devices.profiles import make_profile
from dockd.retention.report import COUNTS, OVERDUE_COLUMNS, REPORT_COLUMNS
from dockd.runner.session import run_session
from dockd.service import Service

BOM = b"\xef\xbb\xbf"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class State:
    config: Path
    state: Path
    now: datetime  # when the state was built

    def run(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKD_STATE_DIR", "SUDO_USER")}
        return subprocess.run(
            [sys.executable, "-m", "dockd", "--config", str(self.config),
             "--state-dir", str(self.state), *args],
            cwd=ROOT, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip

    def ok(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        result = self.run(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result


def _dock(service: Service, cam: Path, serial: str, officer: str, starts: list[datetime]) -> None:
    """Dock a camera holding one real clip per start (named as a GA/T 947 camera names it)."""
    shutil.rmtree(cam, ignore_errors=True)
    zone = service.config.profiles.camera_timezone
    for seq, start in enumerate(starts, 1):
        path = cam / "DCIM" / gat947_name(officer, serial, start, seq, zone)
        path.parent.mkdir(parents=True, exist_ok=True)
        make_clip(path, start, seconds=1.0 + 0.3 * seq)
    profile = make_profile("gat947", service.config.profiles)
    run_session(service, cam, serial, profile, wipe=True, should_stop=lambda: False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> State:
    tmp = tmp_path_factory.mktemp("report-csv")
    config = tmp / "dockd.toml"
    config.write_text(
        "[ingest]\nmin_free_bytes = 0\nchange_retry_delay = 0\n"
        f'[daemon]\nruntime_dir = "{tmp / "run"}"\n',
        encoding="utf-8",
    )
    state, cam = tmp / "state", tmp / "cam"
    now = datetime.now(UTC).replace(microsecond=0)
    clock = FixedClock(now - timedelta(days=10))
    with Service(load_config(config, state), clock) as service:
        for serial, officer, unit in (
            ("DSJ0001", "012345", "一中队"),
            ("DSJ0002", "054321", "二中队"),
        ):
            service.assign_device(
                serial, officer=officer, unit=unit, device_number=f"BWC-{serial[-2:]}",
                valid_from=now - timedelta(days=10), actor="admin",
            )  # fmt: skip
        # 一中队: docked on time 30 h ago and not since: overdue (devices.overdue_hours 24).
        clock.current = now - timedelta(hours=30)
        _dock(service, cam, "DSJ0001", "012345", [now - timedelta(hours=h) for h in (33, 32)])
        # 二中队: docked 2 h ago, on time: not overdue.
        clock.current = now - timedelta(hours=2)
        _dock(service, cam, "DSJ0002", "054321", [now - timedelta(hours=3)])
        # Nobody's camera, docked 40 h after recording: late, unassigned, never overdue.
        clock.current = now - timedelta(hours=1)
        _dock(service, cam, "DSJ0003", "099999", [now - timedelta(hours=41)])
        assert len(service.recordings()) == 4
    return State(config, state, now)


def _table(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(BOM), data[:20]
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_on_stdout_is_excel_ready_and_adds_up(built: State) -> None:
    result = built.ok("report", "compliance", "--format", "csv")
    rows = _table(result.stdout)
    assert list(rows[0]) == ["unit", *COUNTS, *REPORT_COLUMNS]
    *groups, total = rows
    assert [g["unit"] for g in groups] == ["一中队", "二中队", "(none)"]
    assert total["unit"] == "TOTAL"
    assert [(g["recordings"], g["on_time"], g["late"], g["unassigned"]) for g in groups] == [
        ("2", "2", "0", "0"), ("1", "1", "0", "0"), ("1", "0", "1", "1"),
    ]  # fmt: skip
    for column in COUNTS:
        assert sum(Decimal(g[column]) for g in groups) == Decimal(total[column]), column
    # Clips of 1.3 + 1.6, 1.3 and 1.3 s (as ffprobe measures them): about 5.5 s in all.
    assert 4 <= int(total["seconds"]) <= 7 and total["hours"] == "0.00"
    for r in rows:
        assert (r["period_from"], r["period_to"]) == ("", "")  # unbounded
        assert abs(parse_utc(r["as_of"]) - datetime.now(UTC)) < timedelta(minutes=10)
        assert r["label_after_days"] == "7"
    # stdout holds the counts alone; stderr says where the overdue devices are.
    assert b"1 device(s) overdue for docking are not in this CSV" in result.stderr
    assert b"--out FILE" in result.stderr


def test_csv_period_and_as_of(built: State) -> None:
    start = built.now - timedelta(hours=36)
    as_of = built.now + timedelta(hours=1)
    result = built.ok(
        "report", "compliance", "--format", "csv", "--by", "device",
        "--from", isoformat_utc(start), "--to", isoformat_utc(built.now),
        "--as-of", isoformat_utc(as_of),
    )  # fmt: skip
    *groups, total = _table(result.stdout)
    # DSJ0003's clip was recorded 41 h ago: before the period.
    assert [g["device"] for g in groups] == ["DSJ0001", "DSJ0002"]
    assert total["recordings"] == "3"
    for r in (*groups, total):
        assert (r["period_from"], r["period_to"], r["as_of"]) == (
            isoformat_utc(start), isoformat_utc(built.now), isoformat_utc(as_of),
        )  # fmt: skip


def test_csv_out_writes_the_counts_and_the_overdue_devices(built: State, tmp_path: Path) -> None:
    target = tmp_path / "november.csv"
    # --out alone means CSV.
    result = built.ok("report", "compliance", "--by", "officer", "--out", str(target))
    overdue_file = tmp_path / "november-overdue.csv"
    assert result.stdout.decode().strip() == (
        f"wrote {target} (3 group(s) and TOTAL) and {overdue_file} (1 overdue device(s))"
    )
    counts = _table(target.read_bytes())
    assert [r["officer"] for r in counts] == ["012345", "054321", "099999", "TOTAL"]
    data = overdue_file.read_bytes()
    assert "一中队".encode() in data
    (device,) = _table(data)
    assert list(device) == list(OVERDUE_COLUMNS)
    assert (device["serial"], device["device_number"], device["officer"], device["unit"]) == (
        "DSJ0001", "BWC-01", "012345", "一中队",
    )  # fmt: skip
    assert (device["not_docked"], device["incomplete_docking"]) == ("true", "false")
    assert parse_utc(device["last_docked"]) == built.now - timedelta(hours=30)
    assert float(device["hours_since"]) >= 30
    assert device["why"].startswith("not docked for ")
    assert device["as_of"] == counts[0]["as_of"]


def test_csv_out_usage(built: State, tmp_path: Path) -> None:
    for fmt in ("table", "json"):
        result = built.run("report", "compliance", "--format", fmt, "--out", str(tmp_path / "x"))
        assert result.returncode == 2
        assert b"--out writes the CSV tables" in result.stderr
    result = built.run("report", "compliance", "--out", str(tmp_path / "missing" / "x.csv"))
    assert result.returncode == 2 and b"--out: cannot write" in result.stderr
    assert list(tmp_path.iterdir()) == []
