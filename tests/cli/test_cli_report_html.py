"""`dockd report compliance --format html|pdf`: the page with charts, opened in Chromium.

A state directory with months of footage, built through the Service with a
clock set back in time (dated from the test's `now_utc`, so it holds on any
day and under faketime): two units docking weekly, one late offload, a
sequence hole explained and one not, a recording kept for good (evidence),
one deleted by the retention sweep, two due for deletion within 30 and 90
days, and cameras overdue for docking. The real CLI writes the page, the PDF
and the CSV; headless Chromium reads the page's charts back (every bar
carries its figures) and they must add up to the CSV's.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.clock import FixedClock
from dockd.config import load_config
from dockd.demo import gat947_name, make_clip
from dockd.devices.profiles import make_profile
from dockd.runner.session import run_session
from dockd.service import Service
from tests.runner.browser import chromium, keep

ROOT = Path(__file__).resolve().parents[2]
# The footage is dated from the real clock (the CLI's): run under faketime too.
pytestmark = pytest.mark.real_clock
DAY = timedelta(days=1)


@dataclass
class Built:
    config: Path
    state: Path
    now: datetime

    def ok(self, *args: str) -> bytes:
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKD_STATE_DIR", "SUDO_USER")}
        done = subprocess.run(
            [sys.executable, "-m", "dockd", "--config", str(self.config),
             "--state-dir", str(self.state), *args],
            cwd=ROOT, env=env, capture_output=True, timeout=180, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout


def _dock(service: Service, cam: Path, serial: str, officer: str,
          clips: list[tuple[int, datetime]]) -> None:  # fmt: skip
    """Dock a camera holding one real clip per (sequence number, start)."""
    shutil.rmtree(cam, ignore_errors=True)
    zone = service.config.profiles.camera_timezone
    for seq, start in clips:
        path = cam / "DCIM" / gat947_name(officer, serial, start, seq, zone)
        path.parent.mkdir(parents=True, exist_ok=True)
        make_clip(path, start, seconds=1.0)
    profile = make_profile("gat947", service.config.profiles)
    run_session(service, cam, serial, profile, wipe=True, should_stop=lambda: False)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    now = datetime.now(UTC).replace(microsecond=0)  # the CLI judges by the real clock
    tmp = tmp_path_factory.mktemp("report-html")
    config = tmp / "dockd.toml"
    config.write_text(
        '[ingest]\nmin_free_bytes = 0\nchange_retry_delay = 0\n[retention]\npreset = "minimum"\n',
        encoding="utf-8",
    )
    state, cam = tmp / "state", tmp / "cam"
    clock = FixedClock(now - 300 * DAY)
    with Service(load_config(config, state), clock) as s:
        for serial, officer, unit in (("DSJ0001", "012345", "一中队"),
                                      ("DSJ0002", "054321", "二中队")):  # fmt: skip
            s.assign_device(serial, officer=officer, unit=unit, valid_from=now - 300 * DAY,
                            actor="admin")  # fmt: skip

        def dock_at(when: datetime, serial: str, officer: str, clips: list[tuple[int, int]],
                    ) -> None:  # fmt: skip
            clock.current = when
            _dock(s, cam, serial, officer, [(seq, now - hours * timedelta(hours=1))
                                             for seq, hours in clips])  # fmt: skip

        h = 24
        # Long ago: before the 26 weeks the charts show (the table counts it).
        dock_at(now - 200 * DAY + 2 * timedelta(hours=1), "DSJ0001", "012345", [(1, 200 * h)])
        # Routine footage whose six months end within 30 and within 90 days.
        dock_at(now - 170 * DAY + timedelta(hours=2), "DSJ0002", "054321", [(1, 170 * h)])
        dock_at(now - 100 * DAY + timedelta(hours=2), "DSJ0002", "054321", [(2, 100 * h)])
        # Weekly dockings of 一中队; the one 14 days ago came 48 h late; a hole at seq 5.
        dock_at(now - 21 * DAY + timedelta(hours=3), "DSJ0001", "012345", [(2, 21 * h)])
        dock_at(now - 12 * DAY, "DSJ0001", "012345", [(3, 14 * h)])
        dock_at(
            now - 7 * DAY + timedelta(hours=3), "DSJ0001", "012345", [(4, 7 * h), (6, 7 * h - 1)]
        )
        # 二中队 three days ago, with a hole at seq 3.
        dock_at(now - 3 * DAY + timedelta(hours=2), "DSJ0002", "054321", [(4, 3 * h)])
        # Nobody's camera, late.
        dock_at(now - 2 * DAY, "DSJ0003", "099999", [(1, 4 * h)])
        # The 200-day-old clip: expired 18 days ago, marked, then deleted after its grace.
        clock.current = now - 10 * DAY
        marked = s.sweep(clock.current, actor="admin").summary()
        assert len(marked["marked_pending"]) == 1, (marked, s.recordings()[0])
        clock.current = now - 2 * DAY
        swept = s.sweep(clock.current, actor="admin").summary()
        assert len(swept["deleted"]) == 1, swept
        clock.current = now - DAY
        latest = s.recordings()[-2]
        s.tag([latest.id], categories=("evidence",), reason="used in court", actor="clerk")
        holes = [g for g in s.interruptions() if g.counts]
        assert len(holes) == 2, holes
        first = next(g for g in holes if g.device_serial == "DSJ0001")
        s.explain_gap(first.id, "battery changed between clips", actor="supervisor")
    return Built(config, state, now)


def _csv(data: bytes) -> dict[str, dict[str, str]]:
    rows = csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    return {r["unit"]: r for r in rows}


_READ_CHARTS = """
return [...document.querySelectorAll('svg.chart')].map(svg => ({
  chart: svg.dataset.chart,
  earlier: svg.closest('figure') ? [svg.closest('figure').dataset.earlierOnTime || '0',
                                    svg.closest('figure').dataset.earlierLate || '0'] : null,
  bars: [...svg.querySelectorAll('rect.bar')].map(r => [r.dataset.series, r.dataset.category,
                                                      Number(r.dataset.value)]),
  box: svg.getBoundingClientRect().width,
}));
"""
_READ_TABLE = """
return [...document.querySelectorAll('table.counts tbody tr')].map(tr => [tr.dataset.group,
  Object.fromEntries([...tr.querySelectorAll('td[data-column]')].map(
    td => [td.dataset.column, td.textContent]))]);
"""


def _look(page: Path, shot: Path) -> tuple[list[dict[str, Any]], list[Any]]:
    with chromium() as browser:
        browser.set_window_size(1000, 3600)
        browser.get(page.as_uri())
        charts = browser.execute_script(_READ_CHARTS)
        table = browser.execute_script(_READ_TABLE)
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1000, int(height) + 120)
        browser.save_screenshot(str(shot))
    keep(shot)
    return charts, table


def test_the_page_shows_charts_that_add_up_to_the_csv(built: Built, tmp_path: Path) -> None:
    page, counts = tmp_path / "compliance.html", tmp_path / "compliance.csv"
    built.ok("report", "compliance", "--format", "html", "--out", str(page))
    built.ok("report", "compliance", "--out", str(counts))
    html = page.read_text("utf-8")
    assert "执法记录仪数据合规报告" in html
    # Self-contained: no script, nothing fetched.
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html
    rows = _csv(counts.read_bytes())
    charts, table = _look(page, tmp_path / "report-compliance-zh.png")
    by_name = {c["chart"]: c for c in charts}
    assert {"weekly:一中队", "weekly:二中队", "weekly:(none)", "interruptions", "tiers",
            "storage", "deletions", "overdue"} <= set(by_name), sorted(by_name)  # fmt: skip
    assert all(c["box"] > 300 for c in charts), "every chart is drawn at a readable size"
    # The table is the CSV's, cell for cell.
    for group, cells in table:
        for column, text in cells.items():
            assert rows[group][column] == text, (group, column)
    # On time vs late: the bars plus the weeks before them are the CSV's, per group.
    totals: dict[str, float] = defaultdict(float)
    for group in ("一中队", "二中队", "(none)"):
        chart = by_name[f"weekly:{group}"]
        sums: dict[str, float] = defaultdict(float)
        for series, _week, value in chart["bars"]:
            sums[series] += value
        sums["on_time"] += float(chart["earlier"][0])
        sums["late"] += float(chart["earlier"][1])
        assert sums["on_time"] == float(rows[group]["on_time"]), group
        assert sums["late"] == float(rows[group]["late"]), group
        totals["on_time"] += sums["on_time"]
        totals["late"] += sums["late"]
    assert totals == {"on_time": float(rows["TOTAL"]["on_time"]),
                      "late": float(rows["TOTAL"]["late"])}  # fmt: skip
    assert float(by_name["weekly:一中队"]["earlier"][0]) == 1  # the 200-day-old clip
    assert float(rows["TOTAL"]["late"]) == 2
    # Interruptions: one explained (一中队), one not (二中队), as the CSV says.
    gaps = {(s, c): v for s, c, v in by_name["interruptions"]["bars"]}
    assert gaps == {("explained", "一中队"): 1, ("unexplained", "二中队"): 1}
    assert rows["一中队"]["interruptions_explained"] == "1"
    assert rows["二中队"]["interruptions_unexplained"] == "1"
    # Tiers: kept + deleted is every recording; one permanent, one deleted.
    tiers = {(s, c): v for s, c, v in by_name["tiers"]["bars"]}
    assert sum(tiers.values()) == float(rows["TOTAL"]["recordings"])
    assert tiers[("live", "永久")] == 1 and tiers[("deleted", "6 个月")] == 1
    # Storage rises as footage comes in and never goes below zero.
    stored = [v for _, _, v in by_name["storage"]["bars"]]
    assert stored and min(stored) > 0
    # Deletions: one within 30 days, two within 90.
    due = {s: v for s, _, v in by_name["deletions"]["bars"]}
    assert due == {"days:30": 1, "days:90": 2}
    # Overdue: the assigned cameras that have not docked for a day.
    overdue = {c for _, c, _ in by_name["overdue"]["bars"]}
    assert overdue == {"DSJ0001", "DSJ0002"}


def test_the_english_page_and_the_pdf(built: Built, tmp_path: Path) -> None:
    page, pdf = tmp_path / "en.html", tmp_path / "compliance.pdf"
    built.ok("report", "compliance", "--format", "html", "--lang", "en", "--out", str(page))
    assert "Body-worn camera compliance report" in page.read_text("utf-8")
    charts, _ = _look(page, tmp_path / "report-compliance-en.png")
    assert len(charts) >= 8
    built.ok("report", "compliance", "--format", "pdf", "--out", str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, check=True).stdout
    assert "执法记录仪数据合规报告".encode() in text and "一中队".encode() in text
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / "report-pdf")],
                   check=True)  # fmt: skip
    pages = sorted(tmp_path.glob("report-pdf*.png"))
    assert pages
    for p in pages:
        keep(p)
