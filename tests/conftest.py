"""Shared fixtures: real footage from ffmpeg, a state directory, a service."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockd.clock import FixedClock
from dockd.config import Config, IngestConfig
from dockd.demo import make_clip
from dockd.service import Service

# A moment all tests agree on; clips are "recorded" shortly before it.
NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def clip_bank(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Six distinct real MP4s (ffmpeg testsrc + sine), made once per test run."""
    folder = tmp_path_factory.mktemp("clips")
    clips = []
    for i in range(6):
        path = folder / f"clip{i}.mp4"
        make_clip(path, datetime(2026, 11, 25, 1, i, 0, tzinfo=UTC), seconds=1.0 + i * 0.2)
        clips.append(path)
    return clips


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


def put(root: Path, rel: str | bytes, data: bytes | Path) -> Path:
    """Create a file under `root` (bytes names allowed); `data` may be a clip to copy."""
    rel_b = rel if isinstance(rel, bytes) else rel.encode()
    path = Path(os.fsdecode(os.path.join(os.fsencode(root), rel_b)))
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, Path):
        shutil.copyfile(data, path)
    else:
        path.write_bytes(data)
    return path


def is_root_with_fuse() -> bool:
    return os.geteuid() == 0 and os.path.exists("/dev/fuse") and shutil.which("fusefat") is not None
