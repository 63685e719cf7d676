"""The drop folder for card-reader imports (invariants 1, 4 and 6).

Settling runs on an injected monotonic clock, so nothing here sleeps for a
settle period; one test drives the real watchdog observer with a short one.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from dockd.clock import FixedClock
from dockd.config import Config, ProfileConfig
from dockd.devices.profiles import PROFILES, make_profile
from dockd.ingest.scanner import scan
from dockd.ingest.volume import Volume
from dockd.runner.dropfolder import (
    SIDECAR_MAX_BYTES,
    SIDECAR_NAME,
    BatchState,
    DropBatch,
    DropError,
    DropFolder,
    DropSidecar,
    Entry,
    Kind,
    Phase,
    Snapshot,
    changed_outside,
    due,
    ingest_batch,
    observe,
    read_sidecar,
    touch,
)
from dockd.runner.session import EXIT_OK
from dockd.service import Service
from tests.conftest import NOW, put

SETTLE = 10.0
GOOD = {"serial": "CAM0007", "officer": "012345"}


class Ticker:
    """An injected monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Rig:
    root: Path
    drop: DropFolder
    ticker: Ticker
    clock: FixedClock
    handed: list[DropBatch] = field(default_factory=list)

    def settle(self, seconds: float = SETTLE) -> tuple[DropBatch, ...]:
        """A pass now (the batch is seen), then one after `seconds`."""
        first = self.drop.check_now()
        self.ticker.advance(seconds)
        return first + self.drop.check_now()


def make_rig(
    tmp_path: Path,
    on_ready: Callable[[DropBatch], None] | None = None,
    **kwargs: Any,
) -> Rig:
    root = tmp_path / "drop"
    root.mkdir(exist_ok=True)
    ticker, clock = Ticker(), FixedClock(NOW)
    handed: list[DropBatch] = []
    drop = DropFolder(
        root,
        SETTLE,
        on_ready or handed.append,
        clock=clock,
        monotonic=ticker,
        **kwargs,
    )
    return Rig(root, drop, ticker, clock, handed)


def batch(root: Path, name: str, files: dict[str, bytes], sidecar: Any = GOOD) -> Path:
    """A batch folder with `files` and a sidecar (dict -> JSON, bytes as is, None: none)."""
    folder = root / name
    folder.mkdir(parents=True)
    for rel, data in files.items():
        put(folder, rel, data)
    if sidecar is not None:
        raw = sidecar if isinstance(sidecar, bytes) else json.dumps(sidecar).encode()
        (folder / SIDECAR_NAME).write_bytes(raw)
    return folder


def events(logs: list[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


# -- the sidecar format ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "not valid JSON"),
        (b"serial=CAM1", "not valid JSON"),
        (b'{"serial": "CAM1",}', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'["CAM1"]', "expected a JSON object"),
        (b"{}", '"serial" is missing'),
        (b'{"serial": null}', '"serial" is missing'),
        (b'{"serail": "CAM1"}', "unknown keys 'serail'"),
        (b'{"serial": "CAM1", "case": "x"}', "unknown keys 'case'"),
        (b'{"serial": "CAM1", "serial": "CAM2"}', "'serial' appears twice"),
        (b'{"serial": 7}', '"serial" must be a string, got int'),
        (b'{"serial": ""}', '"serial" is empty'),
        (b'{"serial": "../../etc"}', "must be 1-64 letters"),
        (b'{"serial": "CAM 1"}', "must be 1-64 letters"),
        (b'{"serial": "-CAM1"}', "starting with a letter or digit"),
        (b'{"serial": "\xe6\x91\x84\xe5\x83\x8f"}', "must be 1-64 letters"),
        (json.dumps({"serial": "C" * 65}).encode(), "longer than 64"),
        (b'{"serial": "CAM1", "officer": "01\\u00002"}', '"officer" contains control'),
        (b'{"serial": "CAM1", "officer": ["a"]}', '"officer" must be a string'),
        (b'{"serial": "CAM1", "profile": "sony"}', "unknown \"profile\" 'sony'"),
        (json.dumps({"serial": "CAM1", "note": "n" * 2001}).encode(), "longer than 2000"),
        (b"[" * 60000, "not valid JSON"),
        (b'{"serial": "CAM1", "note": "' + b"x" * SIDECAR_MAX_BYTES + b'"}', "larger than"),
    ],
)
def test_bad_sidecars_fail_closed_with_a_clear_message(raw: bytes, message: str) -> None:
    """Fails closed: every malformed sidecar is a DropError naming the file, never a crash."""
    with pytest.raises(DropError) as info:
        DropSidecar.from_bytes(raw, "card-7/dockd-import.json")
    text = str(info.value)
    assert text.startswith("card-7/dockd-import.json: ")
    assert message in text


def test_good_sidecars_parse() -> None:
    assert DropSidecar.from_bytes(b'{"serial": "CAM0001"}') == DropSidecar("CAM0001")
    full = DropSidecar.from_bytes(
        "\ufeff".encode()  # Windows Notepad's BOM is tolerated
        + json.dumps(
            {"serial": "A.b_c-1", "officer": "012345", "profile": "generic", "note": "a\nb"}
        ).encode()
    )
    assert full == DropSidecar("A.b_c-1", "012345", "generic", "a\nb")
    nulls = DropSidecar.from_bytes(b'{"serial": "X1", "officer": null, "note": null}')
    assert nulls == DropSidecar("X1")


def test_sidecar_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Invariant 6: opened O_NONBLOCK and checked by fstat, so a FIFO never hangs dockd."""
    os.mkfifo(tmp_path / SIDECAR_NAME)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(DropError, match="not a regular file"):
            read_sidecar(fd, "b/dockd-import.json")
    finally:
        os.close(fd)


def test_the_sidecar_is_never_taken_as_footage(tmp_path: Path) -> None:
    """No profile ingests the sidecar: .json is not a media extension."""
    folder = batch(tmp_path, "b", {"DCIM/100MEDIA/a.mp4": b"v", "a.mp4": b"v"})
    for name in PROFILES:
        with Volume(folder) as volume:
            result = scan(volume, make_profile(name, ProfileConfig()), 32)
        assert b"dockd-import.json" not in {f.rel_path for f in result.files}, name
        assert b"dockd-import.json" in {s.rel_path for s in result.skipped}, name


# -- pure transitions -----------------------------------------------------------------------


def snap(*files: tuple[str, int, int]) -> Snapshot:
    return Snapshot(tuple(Entry(rel.encode(), Kind.FILE, size, mt) for rel, size, mt in files))


def test_settle_transitions() -> None:
    a, b = snap(("x.mp4", 1, 1)), snap(("x.mp4", 2, 2))
    state = observe(None, (1, 1), a, 0.0)
    assert not due(state, 9.9, 10) and due(state, 10.0, 10)
    assert observe(state, (1, 1), a, 5.0) is state, "unchanged: the clock keeps running"
    changed = observe(state, (1, 1), b, 5.0)
    assert changed.changed_at == 5.0 and not due(changed, 14.9, 10)
    assert touch(changed, 7.0).changed_at == 7.0, "an event delays readiness"
    assert touch(changed, 3.0).changed_at == 5.0, "a late event never hastens it"
    assert observe(state, (1, 2), a, 5.0).changed_at == 5.0, "a re-created folder is new"
    flying = BatchState((1, 1), a, 0.0, Phase.IN_FLIGHT, judged=a)
    assert observe(flying, (1, 1), b, 50.0) is flying and touch(flying, 50.0) is flying
    assert not due(flying, 100.0, 10)
    held = BatchState((1, 1), a, 0.0, Phase.HELD, judged=a)
    assert touch(held, 50.0) is held, "events alone never revive a held batch"
    back = observe(held, (1, 1), b, 50.0)
    assert back.phase is Phase.SETTLING and back.judged == a


@pytest.mark.parametrize(
    ("after", "outside"),
    [
        (snap(("keep.txt", 1, 1)), False),  # the ingest deleted x.mp4
        (snap(("keep.txt", 1, 1), ("x.mp4", 5, 5)), False),  # nothing deleted
        (snap(("keep.txt", 1, 2), ("x.mp4", 5, 5)), True),  # touched
        (snap(("keep.txt", 1, 1), ("new.mp4", 5, 5)), True),  # arrived
        (snap(("keep.txt", 9, 1)), True),  # grew
    ],
)
def test_changed_outside(after: Snapshot, outside: bool) -> None:
    handed = snap(("keep.txt", 1, 1), ("x.mp4", 5, 5))
    assert changed_outside(handed, after) is outside


# -- settling -------------------------------------------------------------------------------


def test_ready_only_after_settle(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    batch(rig.root, "2026-11-25-card-7", {"DCIM/100MEDIA/A.MP4": b"12345"})
    with capture_logs() as logs:
        assert rig.settle(SETTLE - 0.1) == ()
        rig.ticker.advance(0.1)
        (ready,) = rig.drop.check_now()
    assert rig.handed == [ready]
    assert ready.path == rig.root / "2026-11-25-card-7"
    assert ready.sidecar == DropSidecar("CAM0007", "012345")
    assert (ready.files, ready.bytes, ready.ready_at) == (1, 5, NOW)
    assert [e["batch"] for e in events(logs, "drop.batch.seen")] == ["2026-11-25-card-7"]
    (logged,) = events(logs, "drop.batch.ready")
    assert logged["serial"] == "CAM0007" and logged["files"] == 1 and logged["bytes"] == 5


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda f: put(f, "DCIM/A.MP4", b"123456"), id="grows"),
        pytest.param(lambda f: put(f, "DCIM/B.MP4", b"x"), id="new file"),
        pytest.param(lambda f: os.utime(f / "DCIM/A.MP4", ns=(1, 1)), id="mtime only"),
        pytest.param(lambda f: (f / "DCIM/A.MP4").rename(f / "DCIM/C.MP4"), id="renamed"),
        pytest.param(lambda f: (f / "DCIM/NEW").mkdir(), id="new folder"),
        pytest.param(lambda f: (f / SIDECAR_NAME).write_text('{"serial": "CAM8"}'), id="sidecar"),
    ],
)
def test_any_change_restarts_the_settle_clock(
    tmp_path: Path, change: Callable[[Path], object]
) -> None:
    """A file still being copied is not ingested half-written."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"DCIM/A.MP4": b"12345"})
    rig.drop.check_now()
    rig.ticker.advance(SETTLE - 1)
    change(folder)
    assert rig.drop.check_now() == ()
    rig.ticker.advance(SETTLE - 0.5)
    assert rig.drop.check_now() == (), "only 9.5 s since the change"
    rig.ticker.advance(0.5)
    assert len(rig.drop.check_now()) == 1


def test_event_delays_readiness_even_when_the_snapshot_looks_the_same(tmp_path: Path) -> None:
    """A rewrite that restores size and mtime (cp -p) is still seen through its event."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"12345"})
    rig.drop.check_now()
    rig.ticker.advance(SETTLE - 1)
    rig.drop._event(str(folder / "A.MP4"))  # as the observer thread would
    rig.ticker.advance(1)
    assert rig.drop.check_now() == ()
    rig.ticker.advance(SETTLE - 1)
    assert len(rig.drop.check_now()) == 1


# -- invalid batches ------------------------------------------------------------------------


def test_invalid_sidecar_is_held_logged_once_and_retried_when_fixed(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v"}, sidecar={"serail": "CAM1"})
    with capture_logs() as logs:
        assert rig.settle() == ()
        for _ in range(3):
            rig.ticker.advance(SETTLE)
            assert rig.drop.check_now() == ()
    (invalid,) = events(logs, "drop.batch.invalid")
    assert invalid["batch"] == "b" and "unknown keys 'serail'" in invalid["reason"]
    assert "b/dockd-import.json" in invalid["reason"]
    assert not (folder / "dockd-import.error.txt").exists(), "nothing is written into a batch"
    (status,) = rig.drop.status()
    assert status.phase == "held" and "serail" in status.reason
    (folder / SIDECAR_NAME).write_text('{"serial": "CAM1"}')
    (ready,) = rig.settle()
    assert ready.sidecar.serial == "CAM1"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda f: None, "missing: each batch needs a dockd-import.json", id="none"),
        pytest.param(
            lambda f: (f / "DOCKD-IMPORT.JSON").write_text("{}"),
            "found DOCKD-IMPORT.JSON: the name must be exactly",
            id="wrong case",
        ),
        pytest.param(
            lambda f: (f / SIDECAR_NAME).symlink_to(f.parent / "elsewhere.json"),
            "symbolic link (not followed)",
            id="symlink",
        ),
        pytest.param(lambda f: os.mkfifo(f / SIDECAR_NAME), "not a regular file", id="fifo"),
        pytest.param(lambda f: (f / SIDECAR_NAME).mkdir(), "not a regular file", id="folder"),
        pytest.param(
            lambda f: (f / SIDECAR_NAME).write_bytes(b" " * (SIDECAR_MAX_BYTES + 1)),
            "larger than 65536 bytes",
            id="huge",
        ),
    ],
)
def test_unusable_sidecar_files_are_refused(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    """Invariant 6: a sidecar that is a link, FIFO or folder is refused, never opened."""
    rig = make_rig(tmp_path)
    (rig.root / "elsewhere.json").write_text('{"serial": "EVIL"}')
    folder = batch(rig.root, "b", {"A.MP4": b"v"}, sidecar=None)
    make(folder)
    with capture_logs() as logs:
        assert rig.settle() == ()
    (invalid,) = events(logs, "drop.batch.invalid")
    assert message in invalid["reason"]


def test_huge_tree_is_refused(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, max_entries=5)
    batch(rig.root, "b", {f"DCIM/{i}.MP4": b"v" for i in range(10)})
    with capture_logs() as logs:
        assert rig.settle() == ()
        rig.ticker.advance(SETTLE)
        rig.drop.check_now()
    (invalid,) = events(logs, "drop.batch.invalid")
    assert "more than 5 entries" in invalid["reason"]


def test_empty_batch_waits_for_files_and_is_not_removed(tmp_path: Path) -> None:
    """A sidecar written before the card is copied: wait, never hand out or delete."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {})
    with capture_logs() as logs:
        assert rig.settle() == ()
    assert events(logs, "drop.batch.empty") and folder.is_dir()
    put(folder, "DCIM/A.MP4", b"v")
    assert len(rig.settle()) == 1


# -- hostile layouts ------------------------------------------------------------------------


def test_symlinked_batch_and_loose_files_are_ignored_and_logged_once(tmp_path: Path) -> None:
    """Invariant 6: a batch that is a symlink is not followed."""
    rig = make_rig(tmp_path)
    outside = batch(tmp_path, "outside", {"A.MP4": b"secret"})
    (rig.root / "linked").symlink_to(outside, target_is_directory=True)
    (rig.root / "loose.mp4").write_bytes(b"v")
    (rig.root / SIDECAR_NAME).write_text('{"serial": "CAM1"}')
    batch(rig.root, ".incoming-card", {"A.MP4": b"v"})  # staging: silently ignored
    with capture_logs() as logs:
        assert rig.settle() == ()
        rig.ticker.advance(SETTLE)
        assert rig.drop.check_now() == ()
    ignored = {e["name"]: e["reason"] for e in events(logs, "drop.ignored")}
    assert len(events(logs, "drop.ignored")) == 3, "each logged once"
    assert "symbolic link" in ignored["linked"]
    assert "not a folder" in ignored["loose.mp4"] and "not a folder" in ignored[SIDECAR_NAME]
    assert rig.drop.status() == ()
    assert (outside / "A.MP4").exists()


def test_batch_deleted_while_settling_is_forgotten(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v"})
    rig.drop.check_now()
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()
    rig.ticker.advance(SETTLE)
    with capture_logs() as logs:
        assert rig.drop.check_now() == ()
    assert events(logs, "drop.batch.gone") and rig.drop.status() == ()


def test_batch_replaced_while_in_flight_is_a_new_batch(tmp_path: Path) -> None:
    """done() on a batch whose folder was swapped never touches the new folder."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v"})
    (ready,) = rig.settle()
    folder.rename(tmp_path / "old")  # still exists, so the new folder gets a new inode
    new = batch(rig.root, "b", {}, sidecar={"serial": "CAM2"})
    with capture_logs() as logs:
        rig.drop.done(ready, success=True)
    assert events(logs, "drop.batch.gone")
    assert (new / SIDECAR_NAME).exists(), "the new batch's sidecar is left alone"
    put(new, "B.MP4", b"w")
    (again,) = rig.settle()
    assert again.sidecar.serial == "CAM2" and again.folder != ready.folder


# -- in flight and after --------------------------------------------------------------------


def test_batch_is_not_handed_out_twice_while_in_flight(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v"})
    (ready,) = rig.settle()
    put(folder, "B.MP4", b"more")  # even a change does not hand it out again
    for _ in range(3):
        rig.ticker.advance(SETTLE * 2)
        assert rig.drop.check_now() == ()
    assert rig.drop.in_flight() == ("b",)
    rig.drop.done(ready, success=False)
    with pytest.raises(DropError, match="not in flight"):
        rig.drop.done(ready, success=True)


def test_done_after_every_file_was_wiped_removes_the_batch(tmp_path: Path) -> None:
    """Only the sidecar and empty folders are removed, once the session wiped every file."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"DCIM/100MEDIA/A.MP4": b"v", "DCIM/101MEDIA/B.MP4": b"w"})
    (ready,) = rig.settle()
    (folder / "DCIM/100MEDIA/A.MP4").unlink()  # what the session's wipe does
    (folder / "DCIM/101MEDIA/B.MP4").unlink()
    with capture_logs() as logs:
        rig.drop.done(ready, success=True)
    assert not folder.exists() and list(rig.root.iterdir()) == []
    (finished,) = events(logs, "drop.batch.finished")
    assert finished["serial"] == "CAM0007" and finished["files"] == 2
    assert rig.drop.status() == ()


def test_leftover_file_keeps_the_batch_without_a_retry_loop(tmp_path: Path) -> None:
    """Invariant 1: nothing but the sidecar is deleted; an unchanged batch is not retried."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"DCIM/A.MP4": b"v", "DCIM/A.THM": b"thumb"})
    (ready,) = rig.settle()
    (folder / "DCIM/A.MP4").unlink()
    with capture_logs() as logs:
        rig.drop.done(ready, success=True)
        for _ in range(5):
            rig.ticker.advance(SETTLE * 10)
            assert rig.drop.check_now() == ()
    (kept,) = events(logs, "drop.batch.kept")
    assert kept["remaining"] == ["DCIM/A.THM"] and kept["retry"] == "when it changes"
    assert (folder / SIDECAR_NAME).exists() and (folder / "DCIM/A.THM").exists()
    # The operator deletes the leftover: the emptied batch is finished, not re-ingested.
    (folder / "DCIM/A.THM").unlink()
    assert rig.settle() == ()
    assert not folder.exists()


def test_tree_that_returns_to_the_judged_state_is_not_retried(tmp_path: Path) -> None:
    """A flicker (mtime changed and restored) leaves the tree as it was judged: no retry."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v", "A.THM": b"t"})
    (ready,) = rig.settle()
    (folder / "A.MP4").unlink()
    rig.drop.done(ready, success=True)
    before = (folder / "A.THM").stat()
    os.utime(folder / "A.THM", ns=(1, 1))
    rig.drop.check_now()
    assert rig.drop.status()[0].phase == "settling"
    os.utime(folder / "A.THM", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert rig.settle() == ()
    assert rig.drop.status()[0].phase == "held"


def test_failed_ingest_is_retried_only_after_a_change(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v"})
    (ready,) = rig.settle()
    rig.drop.done(ready, success=False)
    rig.ticker.advance(SETTLE * 10)
    assert rig.drop.check_now() == ()
    assert rig.drop.status()[0].reason == "ingest failed"
    os.utime(folder / "A.MP4")  # e.g. copied again
    assert len(rig.settle()) == 1


def test_failed_ingest_of_an_emptied_batch_does_not_remove_it(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v"})
    (ready,) = rig.settle()
    (folder / "A.MP4").unlink()
    rig.drop.done(ready, success=False)
    assert (folder / SIDECAR_NAME).exists()


def test_change_while_in_flight_is_picked_up_after_done(tmp_path: Path) -> None:
    """A file that arrives during the ingest gets its own turn once settled."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v"})
    (ready,) = rig.settle()
    (folder / "A.MP4").unlink()
    put(folder, "B.MP4", b"late")
    rig.drop.done(ready, success=True)
    assert rig.drop.check_now() == ()
    rig.ticker.advance(SETTLE)
    (again,) = rig.drop.check_now()
    assert again.files == 1 and again.bytes == 4


def test_failing_consumer_does_not_get_the_batch_in_a_loop(tmp_path: Path) -> None:
    def boom(_: DropBatch) -> None:
        raise RuntimeError("queue full")

    rig = make_rig(tmp_path, on_ready=boom)
    batch(rig.root, "b", {"A.MP4": b"v"})
    with capture_logs() as logs:
        assert len(rig.settle()) == 1
        rig.ticker.advance(SETTLE * 10)
        assert rig.drop.check_now() == ()
    assert events(logs, "drop.batch.handoff_failed")
    assert rig.drop.status()[0].phase == "held"


def test_sidecar_is_put_back_if_the_batch_cannot_be_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file arriving between the last check and the rmdir keeps batch and sidecar."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "b", {"A.MP4": b"v"})
    (ready,) = rig.settle()
    (folder / "A.MP4").unlink()
    real_rmdir = os.rmdir

    def racing_rmdir(path: Any, *, dir_fd: int | None = None) -> None:
        if path == "b":
            put(folder, "LATE.MP4", b"late")
            raise OSError(errno.ENOTEMPTY, "Directory not empty")
        real_rmdir(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "rmdir", racing_rmdir)
    rig.drop.done(ready, success=True)
    monkeypatch.undo()
    assert json.loads((folder / SIDECAR_NAME).read_text()) == GOOD
    rig.ticker.advance(SETTLE)
    (again,) = rig.drop.check_now()
    assert again.files == 1


# -- the real thing -------------------------------------------------------------------------


def test_real_observer_hands_out_a_batch_renamed_into_place(tmp_path: Path) -> None:
    """watchdog wakes the watcher: the poll interval is an hour, yet the batch is seen."""
    root = tmp_path / "drop"
    root.mkdir()
    got = threading.Event()
    handed: list[DropBatch] = []

    def on_ready(b: DropBatch) -> None:
        handed.append(b)
        got.set()

    drop = DropFolder(root, 0.2, on_ready, poll_interval=3600)
    staging = batch(root, ".incoming-card-7", {"DCIM/A.MP4": b"12345"})
    drop.start()
    try:
        put(staging, "DCIM/B.MP4", b"678")  # still copying: a dot-folder is not a batch
        staging.rename(root / "card-7")
        assert got.wait(10), "the batch was never handed out"
        assert [b.name for b in handed] == ["card-7"] and handed[0].files == 2
        drop.done(handed[0], success=False)
    finally:
        drop.stop()


def test_end_to_end_ingest_clears_the_batch(
    tmp_path: Path, service: Service, config: Config, clip_bank: list[Path]
) -> None:
    """Invariants 1 and 4: dropped clips land in the catalog under the sidecar's serial,
    the batch is cleared, and the sidecar itself was never ingested."""
    assert config.ingest.wipe_after_verify
    rig = make_rig(tmp_path)
    sidecar = {"serial": "CAM0007", "officer": "012345", "profile": "generic"}
    folder = rig.root / "2026-11-25-card-7"
    for i, clip in enumerate(clip_bank[:2]):
        put(folder, f"DCIM/100MEDIA/CLIP{i}.MP4", clip)
    (folder / SIDECAR_NAME).write_text(json.dumps(sidecar))
    (ready,) = rig.settle()
    rig.clock.advance(timedelta(minutes=1))
    report = ingest_batch(service, rig.drop, ready)
    assert report.exit_code == EXIT_OK
    assert report.counts()["ingested"] == 2 and report.counts()["wiped"] == 2
    assert {s.display: s.reason for s in report.skipped}[SIDECAR_NAME] == (
        "not a media file extension"
    )
    recordings = service.recordings()
    assert sorted(r.sha256 for r in recordings) == sorted(
        o.recording.sha256 for o in report.outcomes
    )
    assert {r.device_serial for r in recordings} == {"CAM0007"}
    assert {r.name_officer for r in recordings} == {"012345"}
    assert {r.profile for r in recordings} == {"generic"}
    for rec, clip in zip(sorted(recordings, key=lambda r: r.source_path), clip_bank, strict=False):
        assert (service.store.root / rec.store_path).read_bytes() == clip.read_bytes()
    assert not folder.exists(), "the batch folder is cleared"
    assert service.verify().ok
    # Dropping the same card again ingests nothing twice (invariant 4).
    for i, clip in enumerate(clip_bank[:2]):
        put(folder, f"DCIM/100MEDIA/CLIP{i}.MP4", clip)
    (folder / SIDECAR_NAME).write_text(json.dumps(sidecar))
    (again,) = rig.settle()
    second = ingest_batch(service, rig.drop, again)
    assert second.counts()["ingested"] == 0 and second.counts()["duplicates"] == 2
    assert len(service.recordings()) == 2 and not folder.exists()


def test_end_to_end_non_footage_stays_with_the_sidecar(
    tmp_path: Path, service: Service, clip_bank: list[Path]
) -> None:
    rig = make_rig(tmp_path)
    folder = batch(
        rig.root,
        "card",
        {"DCIM/100MEDIA/CLIP0.MP4": clip_bank[0].read_bytes(), "MISC/notes.txt": b"hi"},
        sidecar={"serial": "CAM0007", "profile": "generic"},
    )
    (ready,) = rig.settle()
    with capture_logs() as logs:
        report = ingest_batch(service, rig.drop, ready)
    assert report.counts()["wiped"] == 1
    assert (folder / "MISC/notes.txt").exists() and (folder / SIDECAR_NAME).exists()
    assert not (folder / "DCIM/100MEDIA/CLIP0.MP4").exists()
    (kept,) = events(logs, "drop.batch.kept")
    assert kept["remaining"] == ["MISC/notes.txt"]
    rig.ticker.advance(SETTLE * 10)
    assert rig.drop.check_now() == ()


def test_batch_swapped_for_a_symlink_is_not_ingested(
    tmp_path: Path, service: Service, clip_bank: list[Path]
) -> None:
    """Invariant 6: a batch replaced by a link after it settled never leads the wipe outside."""
    rig = make_rig(tmp_path)
    folder = batch(rig.root, "card", {"DCIM/CLIP0.MP4": clip_bank[0].read_bytes()})
    (ready,) = rig.settle()
    outside = batch(tmp_path, "outside", {"DCIM/CLIP1.MP4": clip_bank[1].read_bytes()})
    folder.rename(tmp_path / "moved")
    (rig.root / "card").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DropError, match="replaced since it was judged"):
        ingest_batch(service, rig.drop, ready)
    assert (outside / "DCIM/CLIP1.MP4").exists() and service.recordings() == []
    assert rig.drop.in_flight() == ()
