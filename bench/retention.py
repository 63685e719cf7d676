"""Retention benchmark: plan, sweep and compliance report on a 1M-recording catalog.

Run as `.venv/bin/python bench/retention.py` (1,000,000 recordings of 1,000
devices: about 3 minutes to build and 14 to time on 2 shared cores, 9 of
them in dockd's per-row `Catalog.update_retention`; `--quick`: 100,000,
about 2 minutes; `--help` lists the options). This is a benchmark, not a test: it
prints figures measured side by side in one run, each beside the time of a
bare `SELECT count(*) FROM recordings` over the same table (issue 7). It
exits non-zero only when something is *wrong* (a step does not do what the
catalog says it must), never because something is slow.

What it does, in one temporary state directory (deleted at the end unless
`--keep`):

1. Builds the catalog (untimed; its time is printed). A real `Service`
   creates the state directory (schema 5, signing key, `key.created`,
   `retention.policy`) and is closed; then one sqlite3 transaction inserts,
   without going through dockd:
   - `--devices` devices and one assignment each (`device.assigned`);
   - the dockings: each device docks every week or so over `--years` years
     with 4-12 clips of 1-20 minutes recorded back to back (pauses of a few
     seconds; 3 % of pauses over the 60 s gap threshold; 0.2 % of clips
     after a hole of 1-3 sequence numbers; 1 % of dockings more than 24 h
     after the footage: `late`), a `sessions` row each;
   - `--recordings` rows in `recordings`, ids in ingest order, every field
     as `Service._commit_recording` writes it: a unique SHA-256 (of the
     object's bytes, see 2), store path, GA/T 947 file name, media JSON,
     attribution, `deadline`, `late`, flags; tier and `expires_at` from
     `dockd.retention.policy` under the default policy (routine `2y`); 2 %
     labelled `evidence` (tier `permanent`);
   - and, unless `--no-log`, the entries a real ingest writes, in its
     order: `session.started`, a `recording.ingested` per row (its data as
     `_commit_recording` builds it), `session.ended`; hash-chained, each
     with its Merkle leaf and the nodes it completes (`CompactRange`, as
     `Catalog.append` does), so that the log and the tree have a real
     dock's size (about 1.25 entries per recording). With `--no-log` each
     row's `log_seq` points at an existing entry and the log stays tiny:
     the sweep's own entries are real either way, but the start-up's scan
     of the log for the last `retention.policy` entry is then flattered.
     `dockd verify` is not run (and would not pass: no checkpoint covers
     the bulk entries when they are written, and `--no-log` rows have no
     entry of their own).
   The bulk load runs without WAL or fsync, with a 512 MiB page cache, and
   drops the secondary indexes of `recordings` and `log` and makes them
   again after the rows, with their own DDL (a 1M-row build takes minutes,
   not tens of minutes); the catalog is back in WAL mode afterwards. Its
   indexes are therefore packed tighter than a dock's grown ones: scans
   are, if anything, flattered.
   Then a real Service (FixedClock a day before `as_of`) adds through its
   API (`create_case`, `link_case`, `set_hold`, `set_case_state`) one case
   per 2,000 recordings with 4 recordings each, a sixth `evidence` and a
   sixth `review` (both make them permanent), the rest routine; 60 % closed; a hold on
   every fifth case, and one hold per 20,000 recordings on 3 old
   recordings: the plan's "protected" list.
2. Store objects: a real file for each of the first `--objects` (default
   20,000; -1: all) recordings the sweep deletes, at
   `store/sha256/ab/<hex>`, mode 0444, holding the few bytes whose SHA-256
   is the row's hash, so that the sweep's unlinks and directory fsyncs are
   the real ones on real files (the rest of the deletions find no file).
   The output extrapolates the time of an object for every deletion from
   the measured time per object.
3. Times, in this order, on that catalog, with a FixedClock at `as_of`
   (2026-11-25, the end of the `--years` years), so that everything
   recorded more than 2 years before it (a third at the default 3 years) is
   expired; one run each, `count` the median of 5:
   - `SELECT count(*) FROM recordings` (the bare baseline), and a
     diagnostic: the 7 columns `_update_retention` reads, fetched into
     Python, every row;
   - `Service(config, clock)`: a writing start on the big catalog (lock,
     recovery with `tombstoned_objects()`, key, `apply_retention_policy`);
   - `retention_plan(as_of)`; `upcoming(30)`;
   - `sweep()`: marks the expired recordings `pending_deletion`; then the
     clock goes `grace_days` + 1 days on and `sweep()` again deletes them
     (per batch of 500, one transaction with a `retention.deleted` entry
     each, then the unlinks and directory fsyncs): entries written,
     deletions per second, objects removed;
   - a writing start again, now with the tombstones (recovery checks that
     every tombstoned object is gone);
   - `dockd report compliance --json` over everything, in-process, as
     cli/reports.py runs it (`compliance_rows`, `interruptions()`,
     `gap_explanations()`, `devices()`, `sessions`, and the pure
     aggregation of dockd/retention/report.py); without that module, its
     reads only;
   - a policy change: a writing start with `retention.preset = "minimum"`,
     which recomputes the tier of every recording not deleted and logs
     `retention.updated` entries.
   Under a step, the time spent in the dockd functions it calls (each call
   timed by a wrapper patched onto the class for the step: ~0.3 µs a call),
   so that the hot spot is visible without a profiler; `--profile` runs
   each step under cProfile as well and prints its top functions to stderr
   (the times are then inflated).
   Peak RSS per step: this process's VmHWM (ru_maxrss as the kernel keeps
   it), reset through /proc/self/clear_refs before each step when the
   kernel allows it, else cumulative. The build runs in a forked child
   process, so that what it leaves allocated is not the steps' floor. Page
   cache warm: the catalog was just written (a dock's daemon has it warm).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import cProfile
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import pstats
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# Measure the dockd of this checkout, whichever one the virtualenv has installed.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dockd.service.labels as service_labels  # noqa: E402
import dockd.store as store_module  # noqa: E402
from dockd import logs  # noqa: E402
from dockd.catalog import Catalog  # noqa: E402
from dockd.clock import FixedClock, isoformat_utc  # noqa: E402
from dockd.config import Config, RetentionConfig  # noqa: E402
from dockd.integrity.chain import FORMAT_VERSION, LogEntry, entry_hash  # noqa: E402
from dockd.integrity.crosscheck import source_path_b64  # noqa: E402
from dockd.integrity.merkle import CompactRange, leaf_hash  # noqa: E402
from dockd.retention import overdue  # noqa: E402
from dockd.retention.compliance import offload_deadline  # noqa: E402
from dockd.retention.policy import Policy, expiry  # noqa: E402
from dockd.service import Service  # noqa: E402
from dockd.store import OBJECT_MODE, Store  # noqa: E402

# What to tally: (owner, attribute, label). Patched on the class (or module)
# for the step only, so that a Service created inside the step is tallied too.
Tallied = Sequence[tuple[Any, str, str]]

MiB = 1 << 20
DAY = 86_400
# Where the FixedClock stands for the timed steps (tests' NOW).
AS_OF = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
CST = timezone(timedelta(hours=8))  # Asia/Shanghai: no DST since 1991
PROFILE = "gat947"
GAP_SHARE = 0.03  # pauses between two clips of a docking longer than the threshold
HOLE_SHARE = 0.002  # clips after a hole in the camera's sequence numbers
LATE_SHARE = 0.01  # dockings more than 24 h after the footage
EVIDENCE_SHARE = 0.02  # recordings labelled `evidence` (permanent)
MEDIA_TEMPLATE = {
    "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
    "video_codec": "h264",
    "audio_codec": "aac",
    "width": 1920,
    "height": 1080,
}
OBJECT_PREFIX = b"dockd bench/retention object "

# Functions timed inside the steps (see `tally`); the rest of a step is its
# own loop, its SQL and its commits. Indented labels are part of the one above.
START_TALLY: Tallied = (
    (Catalog, "__init__", "Catalog() (open, migrations)"),
    (Service, "recover", "recover()"),
    (Catalog, "tombstoned_objects", "  tombstoned_objects()"),
    (Store, "has", "  store.has(), per tombstoned object"),
    (Service, "_load_signing_key", "_load_signing_key()"),
    (Service, "apply_retention_policy", "apply_retention_policy()"),
    (Service, "_retention_start", "_retention_start()"),
    (Catalog, "update_retention", "  catalog.update_retention(), per row"),
    (Service, "_log", "  _log() (entry + Merkle nodes)"),
)
SWEEP_TALLY: Tallied = (
    (Service, "retention_plan", "retention_plan()"),
    (Service, "_still_deletable", "_still_deletable() (re-check per batch)"),
    (Service, "_log", "_log() (entry + Merkle nodes)"),
    (Catalog, "update_retention", "catalog.update_retention(), per row"),
    (Catalog, "live_references", "catalog.live_references()"),
    (Store, "remove_objects", "store.remove_objects() (unlinks, fsyncs)"),
    (store_module, "fsync_dir", "  fsync_dir()"),
    (Service, "checkpoint", "checkpoint()"),
)


def object_bytes(index: int) -> bytes:
    """The bytes of recording `index`'s object: its SHA-256 is the row's hash."""
    return OBJECT_PREFIX + str(index).encode()


# -- the catalog ----------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    recordings: int
    devices: int
    years: float
    as_of: datetime
    seed: int
    real_log: bool
    max_objects: int | None  # None: every recording the sweep deletes

    @property
    def first(self) -> int:
        """Epoch seconds of the span's start."""
        return int((self.as_of - timedelta(days=round(365.25 * self.years))).timestamp())


@dataclass
class Built:
    recordings: int = 0
    devices: int = 0
    sessions: int = 0
    entries: int = 0  # log entries in the catalog after the build
    permanent: int = 0
    expired_at_as_of: int = 0  # routine rows with expires_at <= as_of (before cases)
    late: int = 0
    objects: int = 0
    cases: int = 0
    open_cases: int = 0
    holds: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    db_bytes: int = 0
    peak_rss_mib: float = 0.0  # of the (child) process that built it


@dataclass(frozen=True)
class Docking:
    dock: int  # epoch seconds
    device: int
    first_clip: int  # index into the clip arrays
    clips: int


def schedule(
    shape: Shape, rng: random.Random
) -> tuple[list[Docking], array[int], array[int], array[int]]:
    """Every docking (sorted by time) and every clip's start, end and sequence number.

    Clips in three arrays, device after device; a docking names its slice.
    Times are whole epoch seconds.
    """
    starts, ends, seqs = array("q"), array("q"), array("q")
    dockings: list[Docking] = []
    span = int(shape.as_of.timestamp()) - 3 * DAY - shape.first
    for device in range(shape.devices):
        count = shape.recordings // shape.devices + (device < shape.recordings % shape.devices)
        sizes: list[int] = []
        while sum(sizes) < count:
            sizes.append(min(rng.randint(4, 12), count - sum(sizes)))
        spacing = span / max(len(sizes), 1)
        seq = rng.randint(0, 50)
        for j, size in enumerate(sizes):
            t = shape.first + int((j + rng.random() * 0.5) * spacing)
            first = len(starts)
            for c in range(size):
                if c:
                    t += rng.randint(90, 1800) if rng.random() < GAP_SHARE else rng.randint(2, 40)
                seq += 1 + (rng.randint(1, 3) if rng.random() < HOLE_SHARE else 0)
                start, t = t, t + rng.randint(60, 1200)
                starts.append(start)
                ends.append(t)
                seqs.append(seq)
            late = rng.random() < LATE_SHARE
            dock = t + (rng.randint(25 * 3600, 40 * 3600) if late else rng.randint(1800, 14_400))
            dockings.append(Docking(dock, device, first, size))
    dockings.sort(key=lambda d: (d.dock, d.device))
    return dockings, starts, ends, seqs


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LogWriter:
    """Appends hash-chained entries and their Merkle nodes, as Catalog.append does, in bulk.

    With `real` False nothing is written: `append` returns the seq of the
    log's last entry (the rows then point at it; see the module doc).
    """

    def __init__(self, conn: sqlite3.Connection, real: bool) -> None:
        self.conn = conn
        self.real = real
        seq, prev = conn.execute("SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.prev = int(seq), str(prev)
        self.edge = CompactRange(self.seq, self._node)
        self.rows: list[tuple[int, str, str, bytes, str]] = []
        self.nodes: list[tuple[int, int, bytes]] = []

    def _node(self, level: int, idx: int) -> bytes:
        row = self.conn.execute(
            "SELECT hash FROM merkle_nodes WHERE level = ? AND idx = ?", [level, idx]
        ).fetchone()
        return bytes(row[0])

    def append(self, kind: str, data: dict[str, Any], moment: str) -> int:
        if not self.real:
            return self.seq
        seq = self.seq + 1
        # canonical_json without its per-value type check (a third of the
        # build's time); every 1000th entry is compared with the real thing.
        value = {"v": FORMAT_VERSION, "seq": seq, "time": moment, "kind": kind, "data": data,
                 "prev": self.prev}  # fmt: skip
        raw = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if seq % 1000 == 0 and raw != LogEntry(seq, moment, kind, data, self.prev).to_bytes():
            raise SystemExit(f"bench: entry {seq} is not canonical JSON")
        digest = entry_hash(raw)
        self.rows.append((seq, moment, kind, raw, digest))
        self.nodes += self.edge.append(leaf_hash(raw))
        self.seq, self.prev = seq, digest
        return seq

    def flush(self) -> None:
        self.conn.executemany(
            "INSERT INTO log (seq, time, kind, entry, hash) VALUES (?, ?, ?, ?, ?)", self.rows
        )
        self.conn.executemany(
            "INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)", self.nodes
        )
        self.rows.clear()
        self.nodes.clear()


RECORDING_COLUMNS = (
    "id", "sha256", "size", "source_path", "source_path_text", "source_mtime_ns", "store_path",
    "device_serial", "device_number", "profile", "officer", "sequence", "recorded_start",
    "recorded_end", "time_source", "clock_offset_s", "ingested_at", "deadline", "late", "flags",
    "media", "session_id", "log_seq", "unit", "name_officer", "name_device", "cause",
    "parties", "categories", "notes", "tier", "expires_at", "keep_until", "retention_state",
    "pending_since", "deleted_at",
)  # fmt: skip
INSERT_RECORDING = (
    f"INSERT INTO recordings ({', '.join(RECORDING_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(RECORDING_COLUMNS))})"
)
SESSION_COLUMNS = (
    "id", "device_serial", "profile", "source", "started_at", "ended_at", "state",
    "clock_offset_s", "summary", "slot", "health",
)  # fmt: skip
INSERT_SESSION = (
    f"INSERT INTO sessions ({', '.join(SESSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})"
)


@dataclass(frozen=True)
class Device:
    serial: str
    number: str
    officer: str
    unit: str
    slot: str
    clock_offset_s: int
    assignment: int


def bulk_insert(state: Path, shape: Shape, built: Built, log: Callable[[str], None]) -> None:
    """Devices, assignments, sessions, recordings (and their entries) in one transaction."""
    rng = random.Random(shape.seed)
    t0 = time.perf_counter()
    dockings, starts, ends, seqs = schedule(shape, rng)
    built.seconds["schedule"] = time.perf_counter() - t0
    log(f"  schedule: {len(dockings):,} dockings in {built.seconds['schedule']:.1f} s")

    store = Store(state / "store")
    for i in range(256):
        (store.objects / f"{i:02x}").mkdir(mode=0o700, exist_ok=True)
    policy = Policy()
    tier = policy.routine_tier
    cutoff = isoformat_utc(shape.as_of)
    objects_left = shape.max_objects

    conn = sqlite3.connect(state / "catalog.sqlite", isolation_level=None)
    # A bulk load, not dockd's way of writing: no WAL and no fsync, a big page
    # cache, and the secondary indexes of recordings and log dropped and made
    # again after the rows (their own DDL, from sqlite_master). WAL again at the end.
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-524288")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('recordings', 'log')"
    ).fetchall()
    writer = LogWriter(conn, shape.real_log)
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')

    # Devices and their assignments, issued 30 days before the first docking.
    devices: list[Device] = []
    issued = iso(shape.first - 30 * DAY)
    device_rows, assignment_rows = [], []
    for d in range(shape.devices):
        dev = Device(
            serial=f"BWC{d:06d}",
            number=f"DSJ{d:05d}",
            officer=f"{100000 + d:06d}",
            unit=f"U{d % 40:02d}",
            slot=f"dock{d % 25:02d}-slot{d % 8}",
            clock_offset_s=rng.randint(-5, 5),
            assignment=d + 1,
        )
        devices.append(dev)
        seq = writer.append(
            "device.assigned",
            {
                "assignment": dev.assignment,
                "serial": dev.serial,
                "officer": dev.officer,
                "unit": dev.unit,
                "device_number": dev.number,
                "valid_from": issued,
                "valid_to": None,
                "created_at": issued,
                "reason": "issued",
                "by": "bench",
                "reattributed": [],
            },
            issued,
        )
        assignment_rows.append(
            (dev.assignment, dev.serial, dev.officer, dev.unit, dev.number, issued, None,
             issued, "issued", seq)
        )  # fmt: skip
        device_rows.append(
            (dev.serial, "2e8a", "0a1b", "Bench Vendor", "BWC-1", PROFILE, issued, None, None)
        )
    conn.executemany(
        "INSERT INTO assignments (id, serial, officer, unit, device_number, valid_from, "
        "valid_to, created_at, reason, log_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        assignment_rows,
    )
    conn.executemany(
        "INSERT INTO devices (serial, vendor_id, model_id, vendor, model, profile, first_seen, "
        "last_docked, last_slot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        device_rows,
    )
    writer.flush()

    recordings: list[tuple[Any, ...]] = []
    sessions: list[tuple[Any, ...]] = []
    last_docked: dict[int, tuple[str, str]] = {}
    rid = 0
    next_report = 100_000
    sha256 = hashlib.sha256
    dumps = json.dumps
    for sid, docking in enumerate(dockings, 1):
        dev = devices[docking.device]
        dock = docking.dock
        started = iso(dock)
        source = f"/run/dockd/volumes/{dev.slot}"
        writer.append(
            "session.started",
            {
                "session": sid,
                "device_serial": dev.serial,
                "profile": PROFILE,
                "source": source,
                "wipe_after_verify": True,
                "officer": None,
                "clock_offset_s": dev.clock_offset_s,
                "slot": dev.slot,
                "device": None,
                "health": None,
            },
            started,
        )
        ids: list[int] = []
        flagged = 0
        for c in range(docking.first_clip, docking.first_clip + docking.clips):
            rid += 1
            ids.append(rid)
            start_ts, end_ts, seq = starts[c], ends[c], seqs[c]
            start, end = utc(start_ts), utc(end_ts)
            start_s, end_s = iso(start_ts), iso(end_ts)
            digest = sha256(object_bytes(rid)).hexdigest()
            store_path = f"sha256/{digest[:2]}/{digest}"
            name = f"{dev.officer}_{dev.number}_{start.astimezone(CST):%Y%m%d%H%M%S}_{seq:04d}.MP4"
            rel = f"DCIM/100MEDIA/{name}"
            rel_b = rel.encode()
            ingested = iso(dock + 20 * (len(ids)))
            deadline = isoformat_utc(offload_deadline(end))
            late = dock + 20 * len(ids) > end_ts + DAY
            flags = ["late"] if late else []
            flagged += late
            evidence = rng.random() < EVIDENCE_SHARE
            if evidence:
                row_tier, expires = "permanent", None
            else:
                when = expiry(tier, end)
                assert when is not None
                row_tier, expires = tier, isoformat_utc(when)
            size = (end_ts - start_ts) * 1_000_000 + rid % 997
            duration_ms = (end_ts - start_ts) * 1000
            media = dumps({**MEDIA_TEMPLATE, "duration_ms": duration_ms, "creation_time": end_s})
            log_seq = writer.append(
                "recording.ingested",
                {
                    "recording": rid,
                    "session": sid,
                    "sha256": digest,
                    "size": size,
                    "source_path": rel,
                    "source_path_b64": source_path_b64(rel_b),
                    "store_path": store_path,
                    "device_serial": dev.serial,
                    "device_number": dev.number,
                    "officer": dev.officer,
                    "unit": dev.unit,
                    "assignment": dev.assignment,
                    "name_officer": dev.officer,
                    "name_device": dev.number,
                    "profile": PROFILE,
                    "recorded_start": start_s,
                    "recorded_end": end_s,
                    "time_source": "file_name",
                    "clock_offset_s": dev.clock_offset_s,
                    "deadline": deadline,
                    "flags": flags,
                    "source_disposition": "delete",
                    "tier": row_tier,
                    "expires_at": expires,
                    "policy_version": policy.version,
                },
                ingested,
            )
            recordings.append(
                (rid, digest, size, rel_b, rel, end_ts * 1_000_000_000, store_path, dev.serial,
                 dev.number, PROFILE, dev.officer, seq, start_s, end_s, "file_name",
                 dev.clock_offset_s, ingested, deadline, int(late), dumps(flags), media, sid,
                 log_seq, dev.unit, dev.officer, dev.number,
                 f"bench cause {rid}" if evidence else None, "[]",
                 '["evidence"]' if evidence else "[]", "[]", row_tier, expires, None, "live",
                 None, None)
            )  # fmt: skip
            built.permanent += evidence
            built.late += late
            if expires is not None and expires <= cutoff:
                built.expired_at_as_of += 1
                if objects_left is None or objects_left > 0:
                    path = store.objects / digest[:2] / digest
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                    try:
                        os.write(fd, object_bytes(rid))
                        os.fchmod(fd, OBJECT_MODE)
                    finally:
                        os.close(fd)
                    built.objects += 1
                    if objects_left is not None:
                        objects_left -= 1
        ended = iso(dock + 20 * (len(ids) + 1))
        counts = {
            "ingested": len(ids), "duplicates": 0, "flagged": flagged, "skipped": 0,
            "failed": 0, "wiped": len(ids), "wipe_failed": 0,
        }  # fmt: skip
        writer.append(
            "session.ended",
            {"session": sid, "state": "done", **counts, "wiped_recordings": ids,
             "failed_files": []},
            ended,
        )  # fmt: skip
        sessions.append(
            (sid, dev.serial, PROFILE, source, started, ended, "done", dev.clock_offset_s,
             dumps({**counts, "wiped_recordings": ids, "failed_files": []}), dev.slot, None)
        )  # fmt: skip
        last_docked[docking.device] = (started, dev.slot)
        if len(recordings) >= 10_000:
            flush_rows(conn, writer, sessions, recordings)
        if rid >= next_report:
            next_report += 100_000
            log(
                f"  {rid:,} recordings, {writer.seq:,} entries, {built.objects:,} objects, "
                f"{time.perf_counter() - t0:.0f} s"
            )
    flush_rows(conn, writer, sessions, recordings)
    t1 = time.perf_counter()
    for _, sql in indexes:
        conn.execute(sql)
    built.seconds["indexes"] = time.perf_counter() - t1
    conn.executemany(
        "UPDATE devices SET last_docked = ?, last_slot = ? WHERE serial = ?",
        [(when, slot, devices[d].serial) for d, (when, slot) in last_docked.items()],
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    built.seconds["rows"] = time.perf_counter() - t0
    built.recordings = rid
    built.devices = shape.devices
    built.sessions = len(dockings)


def flush_rows(
    conn: sqlite3.Connection,
    writer: LogWriter,
    sessions: list[tuple[Any, ...]],
    recordings: list[tuple[Any, ...]],
) -> None:
    writer.flush()
    conn.executemany(INSERT_SESSION, sessions)
    conn.executemany(INSERT_RECORDING, recordings)
    sessions.clear()
    recordings.clear()


def add_cases(svc: Service, shape: Shape, built: Built) -> None:
    """Cases, links, holds and closes through the Service API (each its own transaction)."""
    rng = random.Random(shape.seed + 1)
    # Ids are in ingest order: the oldest third or so is expired at as_of.
    old = max(int(built.recordings * 0.3), 1)
    n_cases = max(4, built.recordings // 2000)
    used: set[int] = set()

    def pick(low: int, high: int, k: int) -> list[int]:
        chosen: list[int] = []
        while len(chosen) < k:
            i = rng.randint(low, high)
            if i not in used:
                used.add(i)
                chosen.append(i)
        return chosen

    for n in range(n_cases):
        no = f"A2026-{n + 1:05d}"
        categories = (("evidence",), ("review",), (), (), (), ())[n % 6]
        svc.create_case(no, cause=f"bench cause {n}", categories=categories, actor="bench")
        low, high = (1, old) if n % 2 == 0 else (old, built.recordings)
        svc.link_case(no, pick(low, high, 4), reason="bench", actor="bench")
        if n % 5 == 0:
            svc.set_hold(case=no, reason="bench hold", actor="bench")
            built.holds += 1
        if n % 10 < 6:
            svc.set_case_state(no, "closed", reason="bench", actor="bench")
        else:
            built.open_cases += 1
    for _ in range(max(2, built.recordings // 20_000)):
        svc.set_hold(ids=pick(1, old, 3), reason="bench hold", actor="bench")
        built.holds += 1
    built.cases = n_cases


def build(state: Path, shape: Shape, config: Config, log: Callable[[str], None]) -> Built:
    built = Built()
    t0 = time.perf_counter()
    with Service(config, FixedClock(utc(shape.first - 31 * DAY))):
        pass  # schema, key, key.created, retention.policy
    built.seconds["service"] = time.perf_counter() - t0
    log(f"building {shape.recordings:,} recordings of {shape.devices:,} devices in {state} …")
    bulk_insert(state, shape, built, log)
    log(
        f"  rows and entries: {built.seconds['rows']:.1f} s"
        f" (indexes {built.seconds['indexes']:.1f} s of it)"
    )
    t0 = time.perf_counter()
    with Service(config, FixedClock(shape.as_of - timedelta(days=1))) as svc:
        add_cases(svc, shape, built)
        svc.checkpoint()
        built.entries = svc.catalog.head()[0]
    built.seconds["cases"] = time.perf_counter() - t0
    log(f"  {built.cases} cases, {built.holds} holds: {built.seconds['cases']:.1f} s")
    built.db_bytes = sum(p.stat().st_size for p in state.glob("catalog.sqlite*") if p.is_file())
    os.sync()
    return built


def say(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return log


def build_child(state: Path, shape: Shape, config: Config, quiet: bool) -> Built:
    built = build(state, shape, config, say(quiet))
    built.peak_rss_mib = Peaks.hwm_mib()
    return built


def build_apart(state: Path, shape: Shape, config: Config, quiet: bool) -> Built:
    """`build` in a forked child: the memory it leaves behind is not the steps' floor."""
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(build_child, state, shape, config, quiet).result()


# -- measuring -----------------------------------------------------------------------


class Peaks:
    """Peak RSS per step: VmHWM, reset through /proc/self/clear_refs before each step."""

    def __init__(self) -> None:
        self.resettable = self.reset()

    @staticmethod
    def reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    @staticmethod
    def hwm_mib() -> float:
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Step:
    name: str
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    entries: int  # log entries the step wrote
    items: int | None = None  # what the step produced (rows, deletions, …)
    unit: str = ""
    note: str = ""
    samples: list[float] = field(default_factory=list)
    # (what, seconds, calls) of the functions tallied during the step.
    breakdown: list[tuple[str, float, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def tally(targets: Tallied) -> Iterator[list[tuple[str, float, int]]]:
    """Time every call of the targets (a perf_counter pair each: ~0.3 µs per call)."""
    seconds = [0.0] * len(targets)
    calls = [0] * len(targets)
    targets = [t for t in targets if t[1] in vars(t[0])]  # renamed or gone: skipped
    saved = [(owner, name, vars(owner)[name]) for owner, name, _ in targets]
    result: list[tuple[str, float, int]] = []

    def timed(k: int, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[k] += clock() - t0
                calls[k] += 1

        return wrapper

    for k, (owner, name, fn) in enumerate(saved):
        setattr(owner, name, timed(k, fn))
    try:
        yield result
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)
        result += [(label, seconds[k], calls[k]) for k, (_, _, label) in enumerate(targets)]


class Runner:
    def __init__(self, catalog_path: Path, profile: bool, quiet: bool) -> None:
        self.peaks = Peaks()
        self.steps: list[Step] = []
        self.profile = profile
        self.quiet = quiet
        # A reader of its own, to count the log's entries between steps.
        self.reader = sqlite3.connect(catalog_path)

    def log_size(self) -> int:
        return int(self.reader.execute("SELECT COALESCE(MAX(seq), 0) FROM log").fetchone()[0])

    def run(
        self,
        name: str,
        fn: Callable[[], Any],
        count: Callable[[Any], int | None] = lambda _: None,
        unit: str = "",
        note: str = "",
        repeat: int = 1,
        tallied: Tallied = (),
    ) -> Any:
        if not self.quiet:
            print(f"  {name} …", end="", flush=True, file=sys.stderr)
        before = self.log_size()
        samples: list[float] = []
        cpu: list[float] = []
        result: Any = None
        self.peaks.reset()
        breakdown: list[tuple[str, float, int]] = []
        for _ in range(repeat):
            profiler = cProfile.Profile() if self.profile else None
            with tally(tallied) as tallies:
                t0, c0 = time.perf_counter(), time.process_time()
                if profiler is not None:
                    profiler.enable()
                result = fn()
                if profiler is not None:
                    profiler.disable()
                samples.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            breakdown = tallies
            if profiler is not None:
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats("tottime").print_stats(14)
                print(f"\n-- cProfile: {name} (by own time)\n{out.getvalue()}", file=sys.stderr)
        step = Step(
            name,
            statistics.median(samples),
            statistics.median(cpu),
            self.peaks.hwm_mib(),
            self.log_size() - before,
            count(result),
            unit,
            note,
            samples if repeat > 1 else [],
            breakdown,
        )
        self.steps.append(step)
        if not self.quiet:
            print(f" {step.seconds:.2f} s", file=sys.stderr)
        return result

    def close(self) -> None:
        self.reader.close()


def bare_count(path: Path) -> Callable[[], int]:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")

    def count() -> int:
        return int(conn.execute("SELECT count(*) FROM recordings").fetchone()[0])

    return count


def python_scan(path: Path) -> Callable[[], int]:
    conn = sqlite3.connect(path)

    def scan() -> int:
        n = 0
        for _row in conn.execute(
            "SELECT id, recorded_end, categories, keep_until, tier, expires_at, retention_state "
            "FROM recordings"
        ):
            n += 1
        return n

    return scan


def report_module() -> Any:
    """dockd.retention.report (the compliance report), or None when this dockd has none."""
    try:
        from dockd.retention import report
    except ImportError:
        return None
    return report


def compliance(report: Any, svc: Service, label_after_days: float) -> str:
    """`dockd report compliance --json` over everything, as the CLI runs it (with the
    charts' figures, `Service.compliance`, where this dockd has them).

    Without the report module: its reads only (rows, interruptions, devices).
    """
    if hasattr(svc, "compliance"):  # the Service's one computation (report and charts)
        result, charts = svc.compliance(None, None, "unit")
        return str(report.to_json(result)) + json.dumps(charts.as_json())
    now = svc.clock.now()
    rows = svc.catalog.compliance_rows(None, None)
    gaps = svc.interruptions()
    if report is None:
        return json.dumps([sum(1 for _ in rows), len(gaps), len(svc.devices())])
    explanations = svc.gap_explanations()
    result = report.compliance_report(
        rows, gaps, explanations, now, label_after_days, "unit",
        overdue=svc.overdue_devices(),
    )  # fmt: skip
    return str(report.to_json(result))


def report_tally(report: Any) -> Tallied:
    found: list[tuple[Any, str, str]] = [
        (Catalog, "compliance_rows", "catalog.compliance_rows(None, None)"),
        (Service, "interruptions", "interruptions() (every device)"),
        (Catalog, "clips", "  catalog.clips()"),
        (service_labels, "interruptions", "  continuity.interruptions() (pure)"),
        (Service, "gap_explanations", "gap_explanations()"),
        (Service, "devices", "devices()"),
        (Catalog, "sessions", "catalog.sessions()"),
    ]
    if report is not None:
        found += [
            (Service, "overdue_devices", "overdue_devices()"),
            (overdue, "last_sessions", "  overdue.last_sessions()"),
            (overdue, "overdue_devices", "  overdue.overdue_devices() (pure)"),
            (report, "compliance_report", "report.compliance_report() (aggregation)"),
            (report, "to_json", "report.to_json()"),
        ]
        with contextlib.suppress(ImportError):
            from dockd.retention.charts import ChartsCounter

            found += [
                (ChartsCounter, "_count", "  charts: counting each row"),
                (ChartsCounter, "charts", "  charts: the values"),
                (Service, "upcoming", "upcoming(30, 90) (deletions coming)"),
            ]
    return found


@contextlib.contextmanager
def work_dir(parent: Path | None, keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockd-bench-retention-", dir=parent))
    try:
        yield path
    finally:
        if keep:
            print(f"kept: {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet: bool = args.json
    log = say(quiet)

    # As `dockd sweep` logs: info events, key=value lines; here into /dev/null
    # (formatted and written all the same: their cost is part of each step).
    devnull = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run)
    logs.configure("info", "keyvalue", stream=devnull)
    shape = Shape(
        args.recordings,
        args.devices,
        args.years,
        AS_OF,
        args.seed,
        args.log,
        None if args.objects < 0 else args.objects,
    )
    with work_dir(args.dir, args.keep) as work:
        state = work / "state"
        config = dataclasses.replace(Config(), state_dir=state)
        built = build_apart(state, shape, config, quiet)
        catalog = state / "catalog.sqlite"
        clock = FixedClock(shape.as_of)
        runner = Runner(catalog, args.profile, quiet)
        r = runner.run
        grace = config.retention.grace_days
        log(f"timing, clock at {isoformat_utc(shape.as_of)}:")

        count = bare_count(catalog)
        total = r("SELECT count(*) FROM recordings", count, lambda n: n, "rows", repeat=5)
        if total != built.recordings:
            raise SystemExit(f"bench: count(*) says {total}, the build inserted {built.recordings}")
        r("scan: 7 retention columns into Python", python_scan(catalog), lambda n: n, "rows")

        svc = r("Service() writer start", lambda: Service(config, clock), tallied=START_TALLY)
        the_plan = r(
            "retention_plan(as_of)",
            lambda: svc.retention_plan(shape.as_of),
            lambda p: len(p.mark_pending) + len(p.delete) + len(p.waiting) + len(p.protected),
            "expired",
        )
        protected = len(the_plan.protected)
        to_mark = len(the_plan.mark_pending)
        if to_mark + protected < built.expired_at_as_of - 4 * built.cases:
            raise SystemExit(f"bench: the plan marks {to_mark}, expected ~{built.expired_at_as_of}")
        del the_plan
        r("upcoming(30)", lambda: svc.upcoming(30), len, "rows")
        first = r(
            "sweep() #1: mark pending",
            svc.sweep,
            lambda s: len(s.marked),
            "marked",
            tallied=SWEEP_TALLY,
        )
        if len(first.marked) != to_mark:
            raise SystemExit(f"bench: sweep #1 marked {len(first.marked)}, the plan {to_mark}")
        del first
        clock.advance(timedelta(days=grace + 1))
        second = r(
            "sweep() #2: delete",
            svc.sweep,
            lambda s: len(s.deleted),
            "deleted",
            tallied=SWEEP_TALLY,
        )
        deleted, removed, marked2 = (
            len(second.deleted),
            len(second.objects_removed),
            len(second.marked),
        )
        del second
        if deleted != to_mark:
            raise SystemExit(f"bench: sweep #2 deleted {deleted}, sweep #1 marked {to_mark}")
        left = sum(1 for _ in (state / "store" / "sha256").glob("*/*"))
        if left != built.objects - removed or removed > deleted:
            raise SystemExit(
                f"bench: {built.objects} objects, {removed} removed, but {left} left in the store"
            )
        svc.close()
        svc = r(
            "Service() writer start, after the sweep",
            lambda: Service(config, clock),
            tallied=START_TALLY,
        )
        report = report_module()
        r(
            "dockd report compliance --json (in-process)"
            if report is not None
            else "compliance reads (no report module)",
            lambda: compliance(report, svc, config.retention.label_after_days),
            len,
            "bytes",
            tallied=report_tally(report),
        )
        svc.close()

        minimum = dataclasses.replace(config, retention=RetentionConfig(preset="minimum"))
        svc = r(
            'Service() start, preset -> "minimum"',
            lambda: Service(minimum, clock),
            note="recomputes every tier",
            tallied=START_TALLY,
        )
        changed = svc.catalog.db.execute(
            "SELECT COUNT(*) FROM recordings WHERE tier = '6m'"
        ).fetchone()[0]
        runner.steps[-1].items, runner.steps[-1].unit = int(changed), "now 6m"
        svc.close()
        runner.close()
        db_after = (state / "catalog.sqlite").stat().st_size
        wal = state / "catalog.sqlite-wal"
        wal_after = wal.stat().st_size if wal.exists() else 0

    steps = runner.steps
    base = steps[0].seconds
    return {
        "command": " ".join([sys.executable, *sys.argv]),
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "as_of": isoformat_utc(shape.as_of),
        "years": shape.years,
        "real_log": shape.real_log,
        "built": dataclasses.asdict(built),
        "db_bytes_after": db_after,
        "wal_bytes_after": wal_after,
        "grace_days": grace,
        "sweep": {
            "marked": to_mark,
            "protected": protected,
            "deleted": deleted,
            "objects_removed": removed,
            "marked_by_second_sweep": marked2,
        },
        "baseline_seconds": base,
        "steps": [{**s.as_json(), "over_count": s.seconds / base} for s in steps],
        "peak_rss_per_step": runner.peaks.resettable,
        "peak_rss_mib": max(s.peak_rss_mib for s in steps),
        "profiled": args.profile,
    }


# -- output ---------------------------------------------------------------------------


def print_table(res: dict[str, Any]) -> None:
    b, sw = res["built"], res["sweep"]
    secs = b["seconds"]
    print(
        f"catalog: {b['recordings']:,} recordings of {b['devices']:,} devices in "
        f"{b['sessions']:,} dockings over {res['years']:g} years; {b['entries']:,} log entries"
        + ("" if res["real_log"] else " (--no-log: rows point at one entry)")
    )
    print(
        f"  {b['permanent']:,} permanent (evidence), {b['late']:,} late; "
        f"{b['cases']} cases ({b['open_cases']} open), {b['holds']} holds; "
        f"{b['objects']:,} store objects\n  (for {b['objects']:,} of the"
        f" {b['expired_at_as_of']:,} routine recordings expired at as_of, the first the sweep"
        " deletes)"
    )
    print(
        f"  catalog {b['db_bytes'] / MiB:.0f} MiB after the build; at the end "
        f"{res['db_bytes_after'] / MiB:.0f} MiB + {res['wal_bytes_after'] / MiB:.0f} MiB WAL;"
        f" built in {secs['service'] + secs['schedule'] + secs['rows'] + secs['cases']:.0f} s"
        f" (rows and entries {secs['rows']:.0f} s, cases {secs['cases']:.0f} s)"
    )
    print(
        f"Python {res['python']}, SQLite {res['sqlite']}, {res['cpus']} CPUs (load average "
        f"{res['loadavg_at_end'][0]:.2f} at the end); clock at {res['as_of']}, "
        f"grace {res['grace_days']} days"
    )
    if res["profiled"]:
        print("PROFILED: every step ran under cProfile; the times are inflated")
    print()
    print(
        f"{'step':<44} {'seconds':>8} {'CPU s':>7} {'x count':>9} {'entries':>8} "
        f"{'items':>10} {'':<9} {'per s':>9} {'peak MiB':>8}"
    )
    for s in res["steps"]:
        items = f"{s['items']:>10,}" if s["items"] is not None else f"{'':>10}"
        rated = s["unit"] in ("marked", "deleted") or s["name"].startswith("scan")
        rate = (
            f"{s['items'] / s['seconds']:>9,.0f}"
            if rated and s["items"] and s["seconds"] > 0
            else f"{'':>9}"
        )
        print(
            f"{s['name']:<44} {s['seconds']:>8.3f} {s['cpu_seconds']:>7.2f} "
            f"{s['over_count']:>9,.0f} {s['entries']:>8,} {items} {s['unit']:<9} {rate} "
            f"{s['peak_rss_mib']:>8.0f}"
        )
        for label, seconds, calls in s["breakdown"]:
            if calls:
                each = f"{seconds / calls * 1e6:,.0f} µs each"
                print(f"    {label:<50} {seconds:>8.3f} s {calls:>10,} calls  {each}")
    print(
        f"\nsweep: {sw['marked']:,} marked pending, {sw['protected']:,} expired but protected; "
        f"{sw['deleted']:,} deleted, {sw['objects_removed']:,} objects removed; the second"
        f"\nsweep also marked {sw['marked_by_second_sweep']:,} that expired in the grace days"
    )
    delete_step = next(s for s in res["steps"] if s["name"].startswith("sweep() #2"))
    unlink = [(sec, n) for label, sec, n in delete_step["breakdown"] if "remove_objects" in label]
    if unlink and sw["objects_removed"] and sw["objects_removed"] < sw["deleted"]:
        each = unlink[0][0] / sw["objects_removed"]
        print(
            f"  store.remove_objects took {each * 1e3:.2f} ms per object removed (unlink +"
            f" its share of the fsyncs);\n  with an object for each of the {sw['deleted']:,}"
            f" deletions (--objects -1) that is about {each * sw['deleted']:,.0f} s"
            f" instead of {unlink[0][0]:,.0f} s"
        )
    how = "per step (VmHWM reset before each)" if res["peak_rss_per_step"] else "cumulative"
    print(
        f"peak RSS: {how}; the largest {res['peak_rss_mib']:.0f} MiB (the build, in a child"
        f" process, {res['built']['peak_rss_mib']:.0f} MiB)"
    )
    print(
        "x count: the step's time over a bare `SELECT count(*) FROM recordings` (median of 5);"
        "\nentries: log entries the step wrote; per s: items per second."
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--recordings", type=int, default=None, help="catalog size (default 1,000,000)"
    )
    parser.add_argument("--quick", action="store_true", help="100,000 recordings (a few minutes)")
    parser.add_argument("--devices", type=int, default=1000, help="cameras (default 1,000)")
    parser.add_argument(
        "--years", type=float, default=3.0, help="span of recorded time before as_of (default 3)"
    )
    parser.add_argument(
        "--objects",
        type=int,
        default=20_000,
        help="store objects to create, at most, for the recordings the sweep deletes first"
        " (default 20,000; -1: one for every one)",
    )
    parser.add_argument(
        "--no-log",
        dest="log",
        action="store_false",
        help="no ingest/session log entries for the bulk rows (faster build; see the doc)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each step (top functions on stderr)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="parent of the work directory")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=2026, help="seed for the catalog")
    args = parser.parse_args(argv)
    if args.recordings is None:
        args.recordings = 100_000 if args.quick else 1_000_000
    if args.recordings < args.devices or args.devices < 1 or args.years <= 0:
        parser.error("--devices >= 1, --recordings >= --devices, --years > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    res = run(args)
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
