"""The replication queue in the catalog (schema 8), without a bucket: what is queued,
in which transaction, under which prefix, and what its triggers refuse."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from pathlib import Path

import pytest

from dockd.clock import FixedClock
from dockd.config import Config, ReplicateConfig
from dockd.devices.profiles import make_profile
from dockd.runner.session import run_session
from dockd.service import Service
from dockd.service import replication as service_replication
from tests.conftest import put

# Nothing listens there: these tests never reach a bucket.
AWAY = ReplicateConfig(endpoint="http://127.0.0.1:9", bucket="evidence")


def _replicating(config: Config, **changes: object) -> Config:
    return dataclasses.replace(config, replicate=dataclasses.replace(AWAY, **changes))  # type: ignore[arg-type]


def _dock(service: Service, camera: Path, clips: list[Path]) -> None:
    for i, clip in enumerate(clips):
        put(camera, f"DCIM/{i}.mp4", clip)
    run_session(service, camera, "DSJ0001", make_profile("gat947", service.config.profiles),
                wipe=False)  # fmt: skip


def _rows(service: Service) -> list[dict[str, object]]:
    return service.catalog.replication_rows()


def test_a_docking_queues_objects_once_its_log_checkpoint_key_and_session(
    config: Config, clock: FixedClock, tmp_path: Path, clip_bank: list[Path]
) -> None:
    with Service(_replicating(config), clock) as service:
        camera = tmp_path / "cam"
        put(camera, "DCIM/copy-of-0.mp4", clip_bank[0])
        _dock(service, camera, clip_bank[:2])
        prefix = service.replication_prefix()
        rows = _rows(service)
    kinds = [r["kind"] for r in rows]
    assert kinds.count("object") == 2  # three files, two contents
    assert kinds.count("key") == 1 and kinds.count("session") == 1
    assert all(str(r["key"]).startswith(prefix + "/") for r in rows)
    assert all(r["state"] == "pending" and r["bucket"] == "evidence" for r in rows)
    # Segments cover the log from entry 1 without a gap, each before its checkpoint.
    spans = [tuple(map(int, str(r["ref"]).split("-"))) for r in rows if r["kind"] == "log"]
    assert spans[0][0] == 1
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))
    checkpoints = [int(str(r["ref"])) for r in rows if r["kind"] == "checkpoint"]
    assert checkpoints and spans[-1][1] == max(checkpoints)
    order = [r["kind"] for r in rows if r["kind"] in ("log", "checkpoint")]
    assert order[0] == "log" and order[-1] == "checkpoint"


def test_turned_on_later_or_moved_to_a_new_prefix_everything_is_queued_again(
    config: Config,
    clock: FixedClock,
    tmp_path: Path,
    clip_bank: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Service(config, clock) as service:  # replication off: nothing queued
        _dock(service, tmp_path / "cam", clip_bank[:3])
        assert _rows(service) == []
    monkeypatch.setattr(service_replication, "SEGMENT_MAX", 4)
    with Service(_replicating(config), clock) as service:
        first = _rows(service)
        size, _ = service.catalog.head()
    assert sum(r["kind"] == "object" for r in first) == 3
    spans = [tuple(map(int, str(r["ref"]).split("-"))) for r in first if r["kind"] == "log"]
    assert all(b - a + 1 <= 4 for a, b in spans)  # a long log goes up in pieces
    assert spans[0][0] == 1 and spans[-1][1] >= size - 1
    with Service(_replicating(config, prefix="east/dock-7"), clock) as service:
        moved = [r for r in _rows(service) if str(r["key"]).startswith("east/dock-7/")]
    assert sum(r["kind"] == "object" for r in moved) == 3
    assert min(int(str(r["ref"]).split("-")[0]) for r in moved if r["kind"] == "log") == 1


def test_a_verified_row_stays_verified_and_its_lock_only_grows(
    config: Config, clock: FixedClock, tmp_path: Path, clip_bank: list[Path]
) -> None:
    with Service(_replicating(config), clock) as service:
        _dock(service, tmp_path / "cam", clip_bank[:1])
        key = next(str(r["key"]) for r in _rows(service) if r["kind"] == "object")
        with service.catalog.transaction():
            service.catalog.update_upload(
                "evidence", key,
                {"state": "verified", "version_id": "v1", "sha256": "ab" * 32,
                 "retain_until": "2030-01-01T00:00:00Z"},
            )  # fmt: skip
        db = service.catalog.db
        for change in (
            "state = 'pending'",
            "version_id = 'v2'",
            "retain_until = '2029-01-01T00:00:00Z'",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="stays verified"):
                db.execute(f"UPDATE replication SET {change} WHERE key = ?", [key])
        db.execute(
            "UPDATE replication SET retain_until = '2031-01-01T00:00:00Z' WHERE key = ?", [key]
        )
        with pytest.raises(sqlite3.IntegrityError, match="history"):
            db.execute("DELETE FROM replication WHERE key = ?", [key])
