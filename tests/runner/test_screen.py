"""The dock's screen in Debian's headless Chromium (chromium-driver through Selenium).

First the states one by one: a real HttpServer (uvicorn, Starlette) fed the
daemon's status shape (SlotState.as_json), changed while the page is open,
so the page must follow over Server-Sent Events without reload. Then a real
daemon process with its screen on, a card ingested through its drop folder,
the tile watched until "safe to undock". Screenshots of each step are kept
in the test's folder (and in $DOCKD_SCREENSHOTS when set) to be looked at.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.clock import FixedClock, isoformat_utc
from dockd.runner.front import HttpServer
from dockd.runner.screen.app import make_app
from dockd.runner.screen.tiles import tiles
from tests.runner.browser import chromium, free_port, keep, shots_folder, wait, wait_tile

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def _slot(state: str, **values: Any) -> dict[str, Any]:
    base = {
        "slot": "usb-1-2", "serial": "DSJ0001", "officer": "012345", "source": "/dev/sdb1",
        "state": state,
        "since": "2026-11-25T08:59:00Z", "profile": "gat947",
        "deadline": isoformat_utc(NOW + timedelta(hours=20)), "files_total": 0,
        "files_done": 0, "bytes_total": 0, "bytes_done": 0, "rate_bps": 0.0,
        "session": 1, "error": None, "counts": {}, "health": None,
    }  # fmt: skip
    return {**base, **values}


# -- the tiles, pure -------------------------------------------------------------------


def test_copying_shows_bytes_percent_and_time_left() -> None:
    slot = _slot("copying", files_total=8, files_done=3, bytes_total=800 << 20,
                 bytes_done=200 << 20, rate_bps=20 << 20)  # fmt: skip
    [tile] = tiles({"slots": [slot]}, NOW, "en")
    assert (tile.percent, tile.seconds_left, tile.tone) == (25, 30, "busy")
    assert tile.headline == "copying" and not tile.late
    assert tile.officer == "012345"  # the officer's number, never a name
    [pool] = tiles({"slots": [_slot("copying", officer=None)]}, NOW)
    assert pool.officer is None
    [zh] = tiles({"slots": [slot]}, NOW)
    assert zh.headline == "正在复制"


def test_done_is_safe_to_undock_and_a_past_deadline_is_late() -> None:
    done = _slot("done", deadline=isoformat_utc(NOW - timedelta(minutes=5)))
    [tile] = tiles({"slots": [done]}, NOW, "en")
    assert tile.headline == "done — safe to undock" and tile.tone == "done"
    assert tile.late and tile.percent is None


def test_an_error_says_what_it_means_and_what_to_do() -> None:
    pulled = _slot("error", error="camera removed before the session finished; dock it again")
    odd = _slot("error", slot="usb-1-3", error="internal error: KeyError: 'x'")
    first, second = tiles({"slots": [pulled, odd]}, NOW, "en")
    assert first.message is not None and "Dock it again" in first.message
    assert second.message is not None and "Tell IT" in second.message
    assert second.detail == "internal error: KeyError: 'x'"
    [zh] = tiles({"slots": [pulled]}, NOW, "zh")
    assert zh.message is not None and "请重新插入" in zh.message
    [batch] = tiles({"slots": [_slot("done", slot="drop:card-7")]}, NOW, "xx")
    assert batch.kind == "batch" and batch.headline == "完成 — 可以取下"  # unknown lang: zh
    assert batch.label == "读卡器 card-7"


def test_a_slot_is_named_by_its_usb_port() -> None:
    from dockd.runner.screen.tiles import slot_label

    assert slot_label("pci-0000:00:14.0-usb-0:1", "zh") == "接口 1"
    assert slot_label("pci-0000:00:14.0-usb-0:1.4:1.0-scsi-0:0:0:0", "en") == "port 1.4"
    assert slot_label("platform-xhci-hcd.1.auto-usb-0:2", "en") == "port 2"
    assert slot_label("virtio-pci-0000:00:05.0", "en") == "virtio-pci-0000:00:05.0"


# -- in the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def test_the_page_follows_each_state_live(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    lock = threading.Lock()
    status: dict[str, Any] = {"slots": []}

    def current() -> dict[str, Any]:
        with lock:
            return {"slots": [dict(s) for s in status["slots"]]}

    def show(*slots: dict[str, Any]) -> None:
        with lock:
            status["slots"] = list(slots)

    port = free_port()
    server = HttpServer.tcp(
        make_app(current, lambda: (True, []), FixedClock(NOW)), "127.0.0.1", port
    )
    server.start()
    shots = shots_folder(tmp_path)
    try:
        browser.get(f"http://127.0.0.1:{port}/")
        assert wait(browser, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "p.empty").text == "请插入执法记录仪"
        )
        browser.save_screenshot(str(shots / "screen-idle.png"))
        show(_slot("detected"))
        wait_tile(browser, "usb-1-2", "detected")
        url = browser.current_url
        for done_mib in (100, 300, 600):
            show(_slot("copying", files_total=8, files_done=done_mib // 100,
                       bytes_total=800 << 20, bytes_done=done_mib << 20,
                       rate_bps=25 << 20))  # fmt: skip
            wait_tile(browser, "usb-1-2", "copying")
            width = f"width: {done_mib * 100 // 800}%;"  # the bar grows as bytes arrive
            wait(browser, 10).until(
                lambda d, w=width: (
                    d.find_element(By.CSS_SELECTOR, ".bar > div").get_attribute("style") == w
                )
            )
        progress = wait(browser, 10).until(
            lambda d: d.find_element(By.CSS_SELECTOR, ".progress").text
        )
        assert "6/8" in progress and "75%" in progress and "剩余 8 秒" in progress
        browser.save_screenshot(str(shots / "screen-copying.png"))
        show(
            _slot("done", counts={"ingested": 8, "wiped": 8}),
            _slot("error", slot="usb-1-3", serial="DSJ0002", officer=None,
                  error="camera removed before the session finished; dock it again to resume",
                  deadline=isoformat_utc(NOW - timedelta(hours=2))),
        )  # fmt: skip
        done = wait_tile(browser, "usb-1-2", "done")
        assert "完成\n可以取下" in done  # one line each, large and green
        assert "DSJ0001" in done and "警号 012345" in done
        error = wait_tile(browser, "usb-1-3", "error")
        assert "请重新插入" in error and "已超 24 小时时限" in error
        assert browser.current_url == url, "the page was not reloaded"
        browser.save_screenshot(str(shots / "screen-done-and-error.png"))
        browser.get(f"http://127.0.0.1:{port}/?lang=en")
        assert "done\nsafe to undock" in wait_tile(browser, "usb-1-2", "done")
        assert "Dock it again" in wait_tile(browser, "usb-1-3", "error")
        browser.save_screenshot(str(shots / "screen-done-and-error-en.png"))
    finally:
        server.stop()
    for shot in shots.iterdir():
        assert shot.stat().st_size > 5000  # a picture, not a blank page
        keep(shot)


def test_healthz_says_ready_or_why_not() -> None:
    import json
    import urllib.error
    import urllib.request

    reasons: list[str] = []
    port = free_port()
    app = make_app(lambda: {"slots": []}, lambda: (not reasons, list(reasons)), FixedClock(NOW))
    server = HttpServer.tcp(app, "127.0.0.1", port)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200 and json.load(answer) == {"ready": True, "reasons": []}
        reasons.append("replication: uploads waiting longer than 24.0 h")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert refused.value.code == 503
        assert json.load(refused.value)["reasons"] == reasons
    finally:
        server.stop()


def test_a_real_daemon_shows_a_card_docked_until_safe_to_undock(
    browser: Any, tmp_path: Path, recent_clips: list[Path], now_utc: datetime
) -> None:
    """`dockd run` with its screen on: a card copied into the drop folder shows up as a
    tile and ends "safe to undock", and the page never reloads."""
    import json

    from tests.conftest import put, recent
    from tests.runner.test_daemon import SERIAL, Dockd, clip_name

    drop = tmp_path / "drop"
    drop.mkdir()
    d = Dockd(tmp=tmp_path, state=tmp_path / "state", runtime=tmp_path / "run", drop=drop,
              config=tmp_path / "dockd.toml")  # fmt: skip
    d.write_config()
    port = free_port()
    with open(d.config, "a", encoding="utf-8") as out:
        out.write(f'[screen]\nlisten = "127.0.0.1:{port}"\n')
    shots = shots_folder(tmp_path)
    try:
        d.start()
        d.wait_event("screen.listening")
        # Through the daemon's API (the CLI is its client): the tile names the officer.
        issued = isoformat_utc(now_utc - timedelta(days=1))
        d.cli_json("device", "assign", SERIAL, "--officer", "054321", "--unit", "Traffic 2",
                   "--from", issued, "--reason", "issued")  # fmt: skip
        browser.get(f"http://127.0.0.1:{port}/")
        url = browser.current_url
        incoming = drop / ".incoming-card"
        for i, clip in enumerate(recent_clips[:3]):
            put(incoming, f"DCIM/{clip_name(i, i + 1, first=recent(now_utc))}", clip)
        (incoming / "dockd-import.json").write_text(json.dumps({"serial": SERIAL}))
        incoming.rename(drop / "card")
        tile = wait_tile(browser, "drop:card", "done", timeout=60)
        assert SERIAL in tile and "警号 054321" in tile and "完成\n可以取下" in tile
        assert browser.current_url == url
        browser.save_screenshot(str(shots / "screen-daemon-done.png"))
        _admin_page(browser, d.runtime / "dockd.sock", port, shots)
        # The CLI's report, answered by the daemon (its API) while it holds the state.
        table = d.cli("report", "compliance")
        assert table.returncode == 0, table.stderr
        assert "Traffic 2" in table.stdout and "TOTAL" in table.stdout
        assert "no device is overdue for docking" in table.stdout
        assert d.stop()[0] == 0
    finally:
        d.kill()
    for shot in shots.iterdir():
        keep(shot)


def _admin_page(browser: Any, sock: Path, port: int, shots: Path) -> None:
    """/admin on the daemon's socket (root here): the compliance page with its charts;
    on the screen's TCP port, where nobody is known, it is refused."""
    import urllib.error
    import urllib.request

    from dockd.runner.client import get

    status, kind, body = get(sock, "/admin")
    assert status == 200 and kind.startswith("text/html")
    page = shots.parent / "admin.html"
    page.write_bytes(body)
    browser.get(page.as_uri())
    charts = browser.execute_script(
        "return [...document.querySelectorAll('svg.chart')].map(s => [s.dataset.chart, "
        "s.querySelectorAll('rect.bar').length])"
    )
    found = dict(charts)
    assert found["weekly:Traffic 2"] == 1, found  # the three clips, in this week
    assert "interruptions" in found and "tiers" in found and "storage" in found
    browser.save_screenshot(str(shots / "admin-page.png"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/admin", timeout=30)
    assert refused.value.code == 403
    status, _, spec = get(sock, "/v1/openapi.json")
    assert status == 200 and b'"/v1/ops/report.compliance"' in spec
