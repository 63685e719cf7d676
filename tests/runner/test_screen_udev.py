"""The dock's screen while a real camera docks: umockdev's udev events, a FUSE-mounted
FAT image, the daemon's real session, the page in headless Chromium.

Copying (the bar rising by bytes), the camera pulled mid-copy (an error tile that
says to dock it again), docked again until "safe to undock". Screenshots of each
step are kept (tests/runner/browser.py `keep`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runner.browser import chromium, free_port, keep, shots_folder, wait_tile
from tests.runner.test_daemon_udev import (
    Dock,
    _dock_slow_camera,
    _slow_camera,
    camera_image,
    dock,
    wait_for,
)
from tests.volumes import FAT_TOOLS, needs_root_fuse

pytestmark = [needs_root_fuse(*FAT_TOOLS, "losetup", "umockdev-wrapper")]
_ = dock  # the fixture: one daemon under umockdev per test


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def _percent(browser: Any) -> int:
    """The bar's width now (0 while the page redraws it)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        bars = browser.find_elements(By.CSS_SELECTOR, ".bar > div")
        style = bars[0].get_attribute("style") if bars else ""
    except StaleElementReferenceException:
        return 0
    return int(style.removeprefix("width: ").removesuffix("%;") or 0) if style else 0


def test_the_screen_follows_a_camera_copying_pulled_and_docked_again(
    dock: Dock, browser: Any, tmp_path: Path
) -> None:
    port = free_port()
    with open(dock.config, "a", encoding="utf-8") as out:
        out.write(f'[screen]\nlisten = "127.0.0.1:{port}"\n')
    shots = shots_folder(tmp_path)
    # A longer copy than test_daemon_udev's: the browser loads the page and sees the
    # bar rise, and the unplug still lands mid-copy, however fast the machine.
    files = _slow_camera("CAMS001", files=48)
    with camera_image(dock.tmp, "CAMS001", files, size_mib=512) as (_image, dev):
        cam = _dock_slow_camera(dock, "CAMS001", 1, dev, 1)
        browser.get(f"http://127.0.0.1:{port}/")
        url = browser.current_url
        tile = wait_tile(browser, cam.slot, "copying", timeout=30)
        assert "CAMS001" in tile and "正在复制" in tile
        first = _percent(browser)
        wait_for(lambda: _percent(browser) > first, 60, "the bar to rise", dock.logs)
        browser.save_screenshot(str(shots / "udev-copying.png"))
        dock.tb.unplug(cam)
        error = wait_tile(browser, cam.slot, "error", timeout=60)
        assert "请重新插入" in error
        browser.save_screenshot(str(shots / "udev-pulled.png"))
        cam = dock.tb.add_camera("CAMS001", port=1, devnode=dev)
        done = wait_tile(browser, cam.slot, "done", timeout=180)
        assert "完成\n可以取下" in done
        assert browser.current_url == url, "the page followed without a reload"
        browser.save_screenshot(str(shots / "udev-done.png"))
        assert dock.stop() == 0
    for shot in shots.iterdir():
        keep(shot)
