"""Debian's headless Chromium for the screen's tests, and what they do with it."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through chromium-driver (Selenium); fails, not skips,
    when they are missing: make setup installs them."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        # Not a skip: make setup installs chromium and chromium-driver.
        pytest.fail("Debian's chromium and chromium-driver are not installed: run make setup")
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,760",
                "--disable-dev-shm-usage", "--lang=zh-CN"):  # fmt: skip
        options.add_argument(arg)
    # The browser keeps the real clock when the suite runs under libfaketime
    # (`make unit-any-day`): Chromium is not what is tested for any day.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "FAKETIME"))}
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER, env=env))
    try:
        yield driver
    finally:
        driver.quit()


def shots_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def keep(shot: Path) -> None:
    wanted = os.environ.get("DOCKD_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(wanted) / shot.name)


def wait(driver: Any, timeout: float) -> Any:
    """A WebDriverWait that looks again when the page redrew the element meanwhile
    (every server-sent update replaces the tiles: a found element may go stale)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))


def wait_tile(driver: Any, slot: str, state: str, timeout: float = 20) -> str:
    """The text of the slot's tile once it shows `state`."""
    from selenium.webdriver.common.by import By

    selector = f'section.tile[data-slot="{slot}"][data-state="{state}"]'

    def text(d: Any) -> str | bool:
        found = d.find_elements(By.CSS_SELECTOR, selector)
        return str(found[0].text) if found else False

    return str(wait(driver, timeout).until(text))
