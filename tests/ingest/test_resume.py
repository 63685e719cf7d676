"""Resuming a large copy from its proven prefix (ingest/resume.py).

A camera pulled (here: a stop request, the same path through the copier as
a read error), then docked again, continues from the last checkpoint; the
stored object is the camera file's exact bytes. A camera file that changed,
a damaged partial copy, or a camera whose bytes differ from the partial's
start again from zero. A real `dockd ingest` killed with SIGKILL at random
byte counts resumes at most one checkpoint before where it was.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from dockd.clock import FixedClock
from dockd.config import Config
from dockd.devices.profiles import make_profile
from dockd.errors import StopRequested
from dockd.ingest.resume import Checkpoint, partial_key
from dockd.ingest.scanner import scan
from dockd.ingest.volume import Volume
from dockd.service import Service
from dockd.service.values import Staged
from tests.conftest import NOW

MiB = 1 << 20
INTERVAL = 4 * MiB
SERIAL = "DSJ0007"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def resumable(config: Config) -> Config:
    ingest = dataclasses.replace(config.ingest, resume_interval=INTERVAL, buffer_size=MiB)
    return dataclasses.replace(config, ingest=ingest)


def _camera(tmp_path: Path, size: int, seed: int = 7) -> Path:
    cam = tmp_path / "cam"
    (cam / "DCIM").mkdir(parents=True)
    clip = cam / "DCIM" / "clip.mp4"
    clip.write_bytes(random.Random(seed).randbytes(size))
    return clip


def _stage(service: Service, cam: Path, stop_after: int | None = None) -> Staged:
    """Stage the camera's one file; with `stop_after`, stop once that many bytes are read."""
    session = service.begin_session(SERIAL, "generic", str(cam), wipe=False)
    profile = make_profile("generic", service.config.profiles)
    with Volume(cam) as volume:
        (found,) = scan(volume, profile, service.config.ingest.max_depth).files
        read = 0

        def progress(n: int) -> None:
            nonlocal read
            read += n

        def should_stop() -> bool:
            return stop_after is not None and read >= stop_after

        staged = service.stage_file(session, volume, found, should_stop, progress)
    assert isinstance(staged, Staged)
    service.prove_staged(staged)  # read back and renamed into the store
    return staged


def _paths(service: Service, clip: Path) -> tuple[Path, Path]:
    rel = clip.relative_to(clip.parent.parent).as_posix().encode()
    return service.store.partial_paths(partial_key(SERIAL, rel))


def test_a_pulled_copy_resumes_from_its_last_checkpoint(resumable: Config, tmp_path: Path) -> None:
    clip = _camera(tmp_path, 22 * MiB + 12345)
    truth = hashlib.sha256(clip.read_bytes()).hexdigest()
    with Service(resumable, FixedClock(NOW)) as service:
        part, note = _paths(service, clip)
        with pytest.raises(StopRequested):
            _stage(service, clip.parent.parent, stop_after=10 * MiB)
        point = Checkpoint.load(note)
        assert point is not None and point.offset == 8 * MiB  # two checkpoints passed
        assert part.stat().st_size - point.offset < INTERVAL
        staged = _stage(service, clip.parent.parent)
        assert staged.copy.resumed_from == 8 * MiB
        assert staged.copy.sha256 == truth
        stored = service.store.object_path(truth)
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == truth
        assert not part.exists() and not note.exists()  # the partial became the object
        assert list(service.store.tmp.iterdir()) == []


def test_a_file_smaller_than_a_checkpoint_is_not_resumable(
    resumable: Config, tmp_path: Path
) -> None:
    clip = _camera(tmp_path, INTERVAL - 1)
    with Service(resumable, FixedClock(NOW)) as service:
        with pytest.raises(StopRequested):
            _stage(service, clip.parent.parent, stop_after=MiB)
        assert list(service.store.partial.iterdir()) == []
        assert list(service.store.tmp.iterdir()) == []


def _interrupted(service: Service, clip: Path) -> Checkpoint:
    with pytest.raises(StopRequested):
        _stage(service, clip.parent.parent, stop_after=9 * MiB)
    point = Checkpoint.load(_paths(service, clip)[1])
    assert point is not None and point.offset == 8 * MiB
    return point


def _recorded_over(service: Service, clip: Path) -> None:
    clip.write_bytes(random.Random(8).randbytes(20 * MiB))  # a new file, a new mtime


def _rewritten_in_place(service: Service, clip: Path) -> None:
    # Same size, same mtime, other bytes before the offset: the sample catches it.
    seen = clip.stat()
    with clip.open("r+b") as f:
        f.seek(8 * MiB - 100)
        f.write(b"\xff" * 100)
    os.utime(clip, ns=(seen.st_atime_ns, seen.st_mtime_ns))


def _partial_damaged(service: Service, clip: Path) -> None:
    part, _ = _paths(service, clip)
    with part.open("r+b") as f:  # one byte of the proven prefix, on the store's disk
        f.seek(3 * MiB)
        byte = f.read(1)
        f.seek(3 * MiB)
        f.write(bytes([byte[0] ^ 1]))


@pytest.mark.parametrize("change", [_recorded_over, _rewritten_in_place, _partial_damaged])
def test_a_prefix_that_cannot_be_trusted_is_copied_again_from_zero(
    resumable: Config, tmp_path: Path, change: Callable[[Service, Path], None]
) -> None:
    clip = _camera(tmp_path, 20 * MiB)
    with Service(resumable, FixedClock(NOW)) as service:
        _interrupted(service, clip)
        change(service, clip)
        staged = _stage(service, clip.parent.parent)
        assert staged.copy.resumed_from == 0
        assert staged.copy.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()


def test_recovery_keeps_a_fresh_partial_and_drops_the_rest(
    resumable: Config, tmp_path: Path
) -> None:
    clip = _camera(tmp_path, 20 * MiB)
    with Service(resumable, FixedClock(NOW)) as service:
        _interrupted(service, clip)
        store = service.store
        part, note = _paths(service, clip)
        lone_part, _ = store.partial_paths("a" * 64)
        lone_part.write_bytes(b"crashed before its first checkpoint")
        _, lone_note = store.partial_paths("b" * 64)
        lone_note.write_text("{}")
        old_part, old_note = store.partial_paths("c" * 64)
        old_part.write_bytes(b"x")
        old_note.write_text("{}")
        month_ago = NOW.timestamp() - 30 * 86400
        os.utime(old_note, (month_ago, month_ago))
    # A clock two days on: the interrupted copy's note is fresh, the old one is not.
    later = FixedClock(NOW + timedelta(days=2))
    os.utime(note, (NOW.timestamp(), NOW.timestamp()))
    with Service(resumable, later) as service:
        left = sorted(p.name for p in service.store.partial.iterdir())
        assert left == sorted([part.name, note.name])
        staged = _stage(service, clip.parent.parent)
        assert staged.copy.resumed_from == 8 * MiB


# -- a real dockd, killed -------------------------------------------------------------


def _dockd(state: Path, config: Path, cam: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "dockd", "--config", str(config), "--state-dir", str(state)]
    return subprocess.Popen(
        [*argv, "ingest", str(cam), "--serial", SERIAL, "--keep-source", "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.parametrize("run", range(3))
def test_sigkill_mid_file_resumes_within_one_checkpoint(tmp_path: Path, run: int) -> None:
    seed = int(os.environ.get("DOCKD_CRASH_SEED", "0"), 0) or random.randrange(1 << 30)
    rng = random.Random(seed + run)
    size = 48 * MiB + rng.randrange(MiB)
    clip = _camera(tmp_path, size, seed=run)
    truth = hashlib.sha256(clip.read_bytes()).hexdigest()
    config = tmp_path / "dockd.toml"
    config.write_text(
        f"[ingest]\nresume_interval = {INTERVAL}\nmin_free_bytes = 0\nchange_retry_delay = 0\n"
    )
    state = tmp_path / "state"
    partial = state / "store" / "partial"
    target = rng.randrange(size)  # kill once the partial copy holds this many bytes
    proc = _dockd(state, config, clip.parent.parent)
    while proc.poll() is None:
        parts = list(partial.glob("*.part")) if partial.is_dir() else []
        if parts and parts[0].stat().st_size >= target:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, (seed, proc.stderr and proc.stderr.read())
    parts = list(partial.glob("*.part"))
    written = parts[0].stat().st_size if parts else size
    notes = list(partial.glob("*.json"))
    point = Checkpoint.load(notes[0]) if notes else None
    proc = _dockd(state, config, clip.parent.parent)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, 3), (seed, err.decode()[-2000:])  # 3: flagged (random bytes)
    (recording,) = json.loads(out)["recordings"]
    assert recording["sha256"] == truth, seed
    stored = state / "store" / "sha256" / truth[:2] / truth
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == truth
    resumed = point.offset if point and parts else 0
    # What the second run copied again from the camera: at most one checkpoint's worth
    # (exactly one when the kill lands in the fsync of the checkpoint just reached).
    if parts:  # (else the kill came after the rename: the object was adopted)
        assert written - resumed <= INTERVAL, (seed, written, resumed)
    # The log says what was taken from the earlier run's proven prefix.
    with sqlite3.connect(state / "catalog.sqlite") as db:
        (entry,) = db.execute("SELECT entry FROM log WHERE kind = 'recording.ingested'").fetchone()
    assert json.loads(entry)["data"].get("copy_resumed_from", 0) == resumed, (seed, entry)
