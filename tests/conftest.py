"""Shared fixtures: real footage from ffmpeg, a state directory, a service."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from dockd.clock import FixedClock
from dockd.config import Config, IngestConfig
from dockd.demo import gat947_name, make_clip
from dockd.service import Service

# The fixed moment of tests that inject a clock (FixedClock): clips are
# "recorded" shortly before it. Tests that run the real CLI or daemon read the
# real clock instead and date their footage from `now_utc` (DESIGN §6): the
# suite must pass on any day, and under `faketime '+400 days'`.
NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
# The zone the default profile reads camera file names in (profiles.camera_timezone).
ZONE = "Asia/Shanghai"


def _clips(folder: Path, first: datetime) -> list[Path]:
    clips = []
    for i in range(6):
        path = folder / f"clip{i}.mp4"
        make_clip(path, first + timedelta(minutes=i), seconds=1.0 + i * 0.2)
        clips.append(path)
    return clips


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Each test starts with structlog's defaults: a CLI test that ran before it
    configures logging at warning (dockd/logs.py), which would hide the info
    events that structlog.testing.capture_logs is asked to see."""
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="session")
def clip_bank(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six distinct real MP4s (ffmpeg testsrc + sine) with creation times
    NOW - 8 h + i minutes, for tests with an injected clock."""
    return _clips(tmp_path_factory.mktemp("clips"), NOW - timedelta(hours=8))


@pytest.fixture(scope="session")
def now_utc() -> datetime:
    """When this test run started, by the real clock (which faketime moves).

    Footage for the real CLI and daemon is dated from it, a few hours back, so
    that "on time" means on time whatever the day; a test that means "late"
    dates its footage more than 24 h back on purpose.
    """
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def recent_clips(tmp_path_factory: pytest.TempPathFactory, now_utc: datetime) -> list[Path]:
    """clip_bank's twins with creation times now_utc - 3 h + i minutes, for
    tests that run the real CLI or daemon (names without a time fall back to it)."""
    return _clips(tmp_path_factory.mktemp("recent-clips"), recent(now_utc))


def recent(now: datetime, minute: int = 0) -> datetime:
    """A recording start three hours before `now` (well inside the 24 h window), plus minutes."""
    return now.replace(second=0) - timedelta(hours=3) + timedelta(minutes=minute)


def camera_name(officer: str, device: str, start: datetime, seq: int, ext: str = "MP4") -> str:
    """The GA/T 947 file name a camera gives a recording started at `start`."""
    return gat947_name(officer, device, start, seq, ZONE, ext)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    ingest = IngestConfig(change_retry_delay=0.0, min_free_bytes=0)
    return dataclasses.replace(Config(), state_dir=tmp_path / "state", ingest=ingest)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def service(config: Config, clock: FixedClock) -> Iterator[Service]:
    with Service(config, clock) as svc:
        yield svc


# What a test module that runs the real CLI or daemon names (in-process through
# click, or as a process): those read the real clock.
_REAL_CLOCK_SIGNS = ("dockd.cli", "run_dockd", "now_utc", "recent_clips")


def _reads_the_real_clock(module: object, cache: dict[str, bool]) -> bool:
    path = str(getattr(module, "__file__", "") or "")
    if path not in cache:
        text = Path(path).read_text("utf-8") if path.endswith(".py") else ""
        cache[path] = any(sign in text for sign in _REAL_CLOCK_SIGNS)
    return cache[path]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `real_clock` every test of a module that runs the real CLI or daemon, or
    that dates its footage from now: `make unit-any-day` runs them under faketime."""
    cache: dict[str, bool] = {}
    for item in items:
        module = getattr(item, "module", None)
        if "now_utc" in getattr(item, "fixturenames", ()) or (
            module is not None and _reads_the_real_clock(module, cache)
        ):
            item.add_marker(pytest.mark.real_clock)


def put(root: Path, rel: str | bytes, data: bytes | Path) -> Path:
    """Create a file under `root` (bytes names allowed); `data` may be a clip to copy."""
    rel_b = rel if isinstance(rel, bytes) else rel.encode()
    path = Path(os.fsdecode(os.path.join(os.fsencode(root), rel_b)))
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, Path):
        shutil.copyfile(data, path)
    else:
        path.write_bytes(data)
    # Written "now" by the clock the test runs on: libfaketime moves the clock
    # but not the times the kernel stamps on files, and a name without a time
    # falls back to the file's mtime (ingest/timing.py).
    now = time.time()
    os.utime(path, (now, now))
    return path


def is_root_with_fuse() -> bool:
    return os.geteuid() == 0 and os.path.exists("/dev/fuse") and shutil.which("fusefat") is not None


@pytest.fixture
def reachable() -> Iterator[Path]:
    """A fresh folder that other uids may enter (pytest's tmp_path is root's 0700):
    for sockets and files that a `setpriv` client as another uid must reach."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="dockd-reachable-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
