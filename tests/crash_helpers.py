"""Crash-injection helpers: a camera stand-in, a killable `dockd ingest`, a cold look at state.

Nothing here calls dockd's own code to read its state: the catalog is read
from a copy of its files with the sqlite3 module, the store and the camera
are listed and hashed directly. That way the checks see exactly what a
SIGKILL left on disk, before any start-up recovery could tidy it up, and
they cannot share a bug with the code they check.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import ZONE

REPO = Path(__file__).resolve().parent.parent
SERIAL = "CAM1"
MEDIA_DIR = b"DCIM/100MEDIA"
EXIT_OK = 0
EXIT_FLAGGED = 3

# A stand-in for ffprobe that answers at once: a readable H.264 video.
QUICK_FFPROBE = """#!/bin/sh
echo '{"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "1.0"},
 "streams": [{"codec_type": "video", "codec_name": "h264", "width": 320, "height": 240}]}'
"""


def write_config(path: Path, ffprobe: str = "ffprobe") -> Path:
    # A stand-in ffprobe answers for every file itself: no probe workers (whose
    # Python, under strace -f, would be a tracee too).
    workers = "" if ffprobe == "ffprobe" else 'probe_python = ""\n'
    path.write_text(
        f"[ingest]\nchange_retry_delay = 0\nmin_free_bytes = 0\nffprobe = {json.dumps(ffprobe)}\n"
        + workers
    )
    return path


def write_quick_ffprobe(path: Path) -> Path:
    path.write_text(QUICK_FFPROBE)
    path.chmod(0o755)
    return path


def sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fs(root: Path, rel: bytes) -> Path:
    return Path(os.fsdecode(os.path.join(os.fsencode(root), rel)))


# -- the camera ----------------------------------------------------------------


@dataclass(frozen=True)
class TruthFile:
    """A camera file as it was before dockd ever saw it."""

    rel: bytes  # path relative to the volume root, as on the volume
    sha256: str
    size: int

    @property
    def display(self) -> str:
        return self.rel.decode("utf-8", "backslashreplace")


class Camera:
    """A directory laid out like a GA/T 947 recorder, and the truth about every file put there.

    Names are `<officer>_<device>_<local start time>_<seq>.MP4` under
    DCIM/100MEDIA; the sequence number runs on over every `record` call, as
    on a camera that records more between two dockings.
    """

    def __init__(self, root: Path, rng: Random) -> None:
        self.root = root
        self.rng = rng
        self.truth: list[TruthFile] = []
        # Camera-local time (the names carry no zone), 10 to 20 hours before now: the
        # real CLI judges it by the real clock, and it must be on time (R1: 24 h) on
        # any day the test runs, with room for the minutes that `record` adds.
        local_now = datetime.now(ZoneInfo(ZONE)).replace(tzinfo=None, microsecond=0)
        self.start = local_now - timedelta(hours=20, minutes=-rng.randrange(600))

    def random_bytes(
        self, count: int, min_size: int = 200_000, max_size: int = 2_500_000
    ) -> list[bytes]:
        """`count` random-byte recordings of log-uniform sizes."""
        return [
            self.rng.randbytes(int(min_size * (max_size / min_size) ** self.rng.random()))
            for _ in range(count)
        ]

    def record(self, contents: Sequence[bytes]) -> None:
        for data in contents:
            seq = len(self.truth) + 1
            moment = self.start + timedelta(minutes=3 * seq)
            name = f"012345_DSJ0001_{moment:%Y%m%d%H%M%S}_{seq:04d}.MP4".encode()
            rel = MEDIA_DIR + b"/" + name
            path = _fs(self.root, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            self.truth.append(TruthFile(rel, hashlib.sha256(data).hexdigest(), len(data)))


def build_camera(
    root: Path, rng: Random, clips: Sequence[Path], *, random_files: int, real_clips: int = 2
) -> Camera:
    """A camera holding random-byte recordings, `real_clips` real MP4s, and one
    more file with the same bytes as another under a different name."""
    camera = Camera(root, rng)
    contents = camera.random_bytes(random_files)
    contents += [p.read_bytes() for p in rng.sample(list(clips), real_clips)]
    contents.append(contents[rng.randrange(random_files)])
    rng.shuffle(contents)
    camera.record(contents)
    return camera


# -- running dockd --------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    returncode: int
    elapsed: float  # from the start of the process
    stdout: str
    stderr: str
    after_lock: float | None  # from when it opened the state's lock file, if watched

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def report(self) -> dict[str, Any]:
        data = json.loads(self.stdout)
        assert isinstance(data, dict), self.stdout
        return data


class Dockd:
    """`python -m dockd` against one state directory, run as a killable subprocess."""

    def __init__(self, state_dir: Path, config_path: Path, python: str = sys.executable) -> None:
        self.state_dir = state_dir
        self.config_path = config_path
        self.python = python
        self.env = {k: v for k, v in os.environ.items() if k != "DOCKD_STATE_DIR"}

    def argv(self, *args: str) -> list[str]:
        return [
            self.python,
            "-m",
            "dockd",
            "--config",
            str(self.config_path),
            "--state-dir",
            str(self.state_dir),
            *args,
        ]

    def run(
        self,
        args: Sequence[str],
        kill_after: float | None = None,
        prefix: Sequence[str] = (),
        *,
        watch_lock: bool = False,
        from_lock: bool = False,
        timeout: float = 300.0,
    ) -> RunResult:
        """Run dockd (behind `prefix`, e.g. strace); SIGKILL it at `kill_after` seconds.

        With `watch_lock`, note when dockd opens the state directory's lock
        file: the interpreter has then imported everything, and the Service
        is about to open the store and catalog and run recovery. With
        `from_lock` too, `kill_after` counts from that moment, otherwise
        from the start of the process.

        The process group (dockd and any ffprobe it started) is its own
        session, and the kill hits all of it at one instant. (A SIGKILL
        loses no page cache, so this proves the order of the writes, not
        that each fsync makes them durable; that needs a power cut.)
        """
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.monotonic()
            proc = subprocess.Popen(
                [*prefix, *self.argv(*args)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=REPO,
                env=self.env,
                start_new_session=True,
            )
            deadline = None
            if kill_after is not None and not from_lock:
                deadline = started + kill_after
            locked = self._wait_for_lock(proc, deadline) if watch_lock or from_lock else None
            if kill_after is not None and from_lock:
                deadline = (locked or time.monotonic()) + kill_after
            try:
                proc.wait(timeout=timeout if deadline is None else deadline - time.monotonic())
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):  # it may have just exited
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if deadline is None:  # pragma: no cover - a hang
                    raise AssertionError(f"dockd {args[0]} hung for {timeout} s") from None
            ended = time.monotonic()
            out.seek(0)
            err.seek(0)
            return RunResult(
                proc.returncode,
                ended - started,
                out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"),
                None if locked is None else ended - locked,
            )

    def _wait_for_lock(self, proc: subprocess.Popen[bytes], deadline: float | None) -> float | None:
        """When `proc` opened the lock file; None if it exited or `deadline` came first."""
        lock = os.path.realpath(self.state_dir / "lock")
        fds = Path(f"/proc/{proc.pid}/fd")
        while proc.poll() is None and (deadline is None or time.monotonic() < deadline):
            with contextlib.suppress(OSError):  # fds come and go while we look
                for fd in fds.iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) == lock:
                            return time.monotonic()
            time.sleep(0.002)
        return None

    def ingest(
        self,
        source: Path,
        kill_after: float | None = None,
        prefix: Sequence[str] = (),
        *,
        watch_lock: bool = False,
        from_lock: bool = False,
    ) -> RunResult:
        args = ["ingest", str(source), "--serial", SERIAL, "--json"]
        return self.run(args, kill_after, prefix, watch_lock=watch_lock, from_lock=from_lock)

    def verify(self) -> RunResult:
        return self.run(["verify", "--json"])


class Pace:
    """How long a run should take, counted from when dockd takes the state's lock.

    Start-up (store, catalog, recovery, scan, session start and end) plus a
    time per camera file left; seeded from timed runs, then corrected by
    every run that gets to its end, so that a machine busy with other work
    still gets its kills drawn across the real length of a run. `imports`
    is the time before the lock: the interpreter loading dockd.
    """

    def __init__(self, imports: float, startup: float, per_file: float) -> None:
        self.imports_ = [imports]
        self.startups = [startup]
        self.per_files = [per_file]

    @property
    def imports(self) -> float:
        return statistics.median(self.imports_)

    @property
    def startup(self) -> float:
        return statistics.median(self.startups)

    @property
    def per_file(self) -> float:
        return statistics.median(self.per_files)

    def expect(self, files: int) -> float:
        return self.startup + self.per_file * files

    def learn(self, result: RunResult, files: int) -> None:
        if result.after_lock is None:
            return
        self.imports_.append(result.elapsed - result.after_lock)
        if files == 0:
            self.startups.append(result.after_lock)
        else:
            self.per_files.append(max(result.after_lock - self.startup, 0.0) / files)


# -- the state a crash left behind ------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: int
    sha256: str
    size: int
    source_path: bytes
    store_path: str
    device_serial: str
    session_id: int | None
    log_seq: int


@dataclass(frozen=True)
class LogRow:
    seq: int
    entry: bytes
    hash: str


@dataclass
class ColdState:
    """Everything on disk, read without opening the state the way dockd does."""

    rows: list[Row] = field(default_factory=list)
    log: list[LogRow] = field(default_factory=list)
    sessions: dict[int, str] = field(default_factory=dict)  # id -> state
    source: dict[bytes, Path] = field(default_factory=dict)  # every file on the camera
    temp: list[str] = field(default_factory=list)  # names in store/tmp
    objects: list[Path] = field(default_factory=list)  # every file under store/sha256

    @property
    def object_names(self) -> set[str]:
        return {p.name for p in self.objects}

    @property
    def orphans(self) -> set[str]:
        return self.object_names - {r.sha256 for r in self.rows}

    @property
    def running(self) -> list[int]:
        return [sid for sid, state in self.sessions.items() if state == "running"]


def _read_catalog(state_dir: Path, cold: ColdState) -> None:
    files = sorted(state_dir.glob("catalog.sqlite*"))
    if not any(f.name == "catalog.sqlite" for f in files):
        return  # killed before the catalog was created
    with tempfile.TemporaryDirectory(prefix="dockd-crash-catalog-") as scratch:
        # Copy the database with its WAL (and a rollback journal, if the kill
        # caught the switch to WAL), not the -shm index, which SQLite rebuilds
        # from the WAL: exactly what the dead process left on disk.
        for f in files:
            if not f.name.endswith("-shm"):
                shutil.copyfile(f, Path(scratch) / f.name)
        conn = sqlite3.connect(Path(scratch) / "catalog.sqlite")
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "recordings" in tables:
                cold.rows = [
                    Row(r[0], r[1], r[2], bytes(r[3]), r[4], r[5], r[6], r[7])
                    for r in conn.execute(
                        "SELECT id, sha256, size, source_path, store_path, device_serial,"
                        " session_id, log_seq FROM recordings ORDER BY id"
                    )
                ]
            if "log" in tables:
                cold.log = [
                    LogRow(r[0], bytes(r[1]), r[2])
                    for r in conn.execute("SELECT seq, entry, hash FROM log ORDER BY rowid")
                ]
            if "sessions" in tables:
                cold.sessions = dict(conn.execute("SELECT id, state FROM sessions"))
        finally:
            conn.close()


def read_cold_state(state_dir: Path, source: Path) -> ColdState:
    cold = ColdState()
    _read_catalog(state_dir, cold)
    for top, _sub, files in os.walk(os.fsencode(source)):
        for file in files:
            full = os.path.join(top, file)
            cold.source[os.path.relpath(full, os.fsencode(source))] = Path(os.fsdecode(full))
    store = state_dir / "store"
    if (store / "tmp").is_dir():
        cold.temp = sorted(p.name for p in (store / "tmp").iterdir())
    if (store / "sha256").is_dir():
        for dirpath, _subdirs, names in os.walk(store / "sha256"):
            cold.objects += sorted(Path(dirpath) / name for name in names)
    return cold


def _parse_entry(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def check_invariants(cold: ColdState, truth: Sequence[TruthFile], state_dir: Path) -> list[str]:
    """What must hold at every instant, however dockd died (DESIGN §4 and §4a).

    - every camera file is on the camera with its original bytes, or has a
      recording row whose store object holds those bytes and whose log
      entry names them (invariant 1);
    - nothing on the camera was changed, and nothing appeared there;
    - every file under store/sha256 is a complete, read-only object that
      hashes to its name (invariant 2: no partial object, ever); partial
      copies live in store/tmp only;
    - every row has its object and its log entry, there is at most one row
      per (device, camera path, sha256) (invariant 4); every ingest entry
      in the log has its row, every session row its start entry (and its
      closing one once closed), and the log is an unbroken hash chain
      (invariant 3: change and entry in one transaction).
    """
    problems: list[str] = []
    by_rel = {t.rel: t for t in truth}
    for rel, path in cold.source.items():
        t = by_rel.get(rel)
        if t is None:
            problems.append(f"camera: unexpected file {rel!r}")
            continue
        sha, size = sha256_of(path)
        if (sha, size) != (t.sha256, t.size):
            problems.append(f"camera: {t.display} was modified ({size} bytes, sha256 {sha})")

    for path in cold.objects:
        name = path.name
        where = f"store: {path.relative_to(state_dir)}"
        if path != state_dir / "store" / "sha256" / name[:2] / name:
            problems.append(f"{where}: object at a wrong place")
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{where}: not a regular file")
            continue
        if st.st_mode & 0o222:
            problems.append(f"{where}: writable (mode {stat.filemode(st.st_mode)})")
        sha, _ = sha256_of(path)
        if sha != name:
            problems.append(f"{where}: partial or damaged object (content hashes to {sha})")

    log_by_seq = {r.seq: r for r in cold.log}
    prev = "0" * 64
    for expected_seq, row in enumerate(cold.log, start=1):
        if row.seq != expected_seq:
            problems.append(f"log: entry {row.seq} stored where {expected_seq} belongs")
        if hashlib.sha256(row.entry).hexdigest() != row.hash:
            problems.append(f"log: entry {row.seq} does not match its recorded hash")
        entry = _parse_entry(row.entry)
        if entry.get("seq") != row.seq or entry.get("prev") != prev:
            problems.append(f"log: entry {row.seq} breaks the hash chain")
        prev = row.hash

    seen_keys: set[tuple[str, bytes, str]] = set()
    for rec in cold.rows:
        where = f"recording {rec.id} ({rec.source_path!r})"
        key = (rec.device_serial, rec.source_path, rec.sha256)
        if key in seen_keys:
            problems.append(f"{where}: second row for the same camera file and bytes")
        seen_keys.add(key)
        t = by_rel.get(rec.source_path)
        if rec.device_serial != SERIAL or t is None or t.sha256 != rec.sha256:
            problems.append(f"{where}: row for a file the camera never held")
        if rec.store_path != f"sha256/{rec.sha256[:2]}/{rec.sha256}":
            problems.append(f"{where}: store_path {rec.store_path!r}")
        if rec.sha256 not in cold.object_names:
            problems.append(f"{where}: committed, but its store object is missing")
        logged = log_by_seq.get(rec.log_seq)
        if logged is None:
            problems.append(f"{where}: its log entry {rec.log_seq} is missing")
            continue
        entry = _parse_entry(logged.entry)
        data = entry.get("data") or {}
        facts = {
            "recording": rec.id,
            "sha256": rec.sha256,
            "size": rec.size,
            "source_path_b64": base64.b64encode(rec.source_path).decode(),
        }
        wrong = sorted(k for k, v in facts.items() if data.get(k) != v)
        if entry.get("kind") != "recording.ingested" or wrong:
            problems.append(f"{where}: log entry {rec.log_seq} does not name it ({wrong})")

    opened, closed = set(), set()
    row_of_seq = {r.log_seq: r for r in cold.rows}
    for row in cold.log:
        entry = _parse_entry(row.entry)
        data = entry.get("data") or {}
        session = data.get("session")
        if entry.get("kind") == "recording.ingested":
            owner = row_of_seq.get(row.seq)
            if owner is None or owner.id != data.get("recording"):
                problems.append(f"log: entry {row.seq} logs an ingest the catalog has no row for")
        if entry.get("kind") == "session.started":
            opened.add(session)
        elif entry.get("kind") in ("session.ended", "session.interrupted"):
            closed.add(session)
    for sid, state in cold.sessions.items():
        if sid not in opened:
            problems.append(f"session {sid}: no session.started entry in the log")
        if state != "running" and sid not in closed:
            problems.append(f"session {sid}: {state}, but no log entry closes it")

    in_catalog = {(r.source_path, r.sha256) for r in cold.rows if r.device_serial == SERIAL}
    for t in truth:
        if t.rel not in cold.source and (t.rel, t.sha256) not in in_catalog:
            problems.append(f"LOST: {t.display} is gone from the camera and not in the catalog")

    if len(cold.running) > 1:
        problems.append(f"sessions {cold.running} are all 'running'")
    return problems


def check_complete(cold: ColdState, truth: Sequence[TruthFile]) -> list[str]:
    """What must hold once an ingest ran to its end: everything in, camera empty, no debris."""
    problems: list[str] = []
    if cold.source:
        problems.append(f"camera not wiped: {sorted(cold.source)}")
    if cold.temp:
        problems.append(f"store/tmp not emptied: {cold.temp}")
    if cold.orphans:
        problems.append(f"store objects no row refers to: {sorted(cold.orphans)}")
    if cold.running:
        problems.append(f"sessions still 'running': {cold.running}")
    keys = sorted((r.source_path, r.sha256) for r in cold.rows)
    expected = sorted((t.rel, t.sha256) for t in truth)
    if keys != expected:
        problems.append(
            f"catalog holds {len(keys)} rows, expected exactly one per camera file "
            f"({len(expected)}); missing {sorted(set(expected) - set(keys))}, "
            f"extra {sorted(set(keys) - set(expected))}"
        )
    return problems


def check_finished_run(
    result: RunResult, before: ColdState, truth: Sequence[TruthFile]
) -> list[str]:
    """A run that got to its end dealt with every file the camera still held."""
    if result.returncode not in (EXIT_OK, EXIT_FLAGGED):
        return [f"ingest exited {result.returncode}, expected 0 or 3"]
    report = result.report()
    problems = []
    counts = report["counts"]
    if report["state"] != "done" or report["failed"] or report["wipe_failed"]:
        problems.append(
            f"session state {report['state']!r}, failed {report['failed']}, "
            f"wipe_failed {report['wipe_failed']}"
        )
    expected_code = EXIT_FLAGGED if counts["flagged"] else EXIT_OK
    if result.returncode != expected_code:
        problems.append(f"exit code {result.returncode} with counts {counts}")
    dealt_with = sorted(r["source_path"] for r in report["recordings"] if r["wiped"])
    on_camera = sorted(t.display for t in truth if t.rel in before.source)
    if dealt_with != on_camera:
        problems.append(f"run ingested and wiped {dealt_with}, camera held {on_camera}")
    return problems


def classify_kill(before: ColdState, after: ColdState) -> str:
    """Where in a run the kill landed, judged from what it left on disk.

    Approximate where a killed run's debris is still there: an orphan left
    by an earlier kill, for instance, looks the same before and after its
    file is probed again.
    """
    new = sorted(set(after.sessions) - set(before.sessions))
    if not new:
        if before.running and set(before.running) <= set(after.running):
            return "start-up, before recovery"
        if before.running or before.temp:
            return "start-up, recovered, before the session began"
        return "start-up, before the session began"
    if after.sessions[new[-1]] != "running":
        return "session ended, before exit"
    if after.temp:
        return "copying: partial copy in store/tmp"
    if after.orphans - before.orphans:
        return "object renamed into the store, row not yet committed"
    # A row whose camera file is still there: committed by this run, or by a
    # killed one and not yet re-checked and wiped by this one.
    if any(r.source_path in after.source for r in after.rows):
        return "row committed, camera file not yet wiped"
    return "between files: scanning, or just wiped"


# -- one camera docked again and again until it is empty ------------------------------


class Scenario:
    """A camera and a fresh state directory; each `step` is one (maybe killed) ingest."""

    def __init__(self, camera: Camera, state_dir: Path, config_path: Path, context: str) -> None:
        self.camera = camera
        self.dockd = Dockd(state_dir, config_path)
        self.context = context
        self.before = read_cold_state(self.dockd.state_dir, camera.root)
        self.runs = 0

    @property
    def truth(self) -> list[TruthFile]:
        return self.camera.truth

    @property
    def files_left(self) -> int:
        return sum(1 for t in self.truth if t.rel in self.before.source)

    def top_up(self, count: int) -> None:
        """The officer records `count` more files before docking again; one of
        them repeats the bytes of an earlier file, which the store may hold already."""
        if count <= 0:
            return
        old = self.camera.rng.choice(self.truth)
        path = self.dockd.state_dir / "store" / "sha256" / old.sha256[:2] / old.sha256
        repeat = path.read_bytes() if path.exists() else _fs(self.camera.root, old.rel).read_bytes()
        contents = [*self.camera.random_bytes(count - 1), repeat]
        self.camera.rng.shuffle(contents)
        self.camera.record(contents)
        self.before = read_cold_state(self.dockd.state_dir, self.camera.root)

    def step(
        self,
        kill_after: float | None = None,
        prefix: Sequence[str] = (),
        *,
        watch_lock: bool = False,
        from_lock: bool = False,
        how: str = "",
    ) -> tuple[str | None, RunResult]:
        """Run ingest once and check the state it left.

        Returns (where the kill landed, result), or (None, result) if the run
        got to its end, after checking that everything is in, the camera is
        empty and `dockd verify` is clean. Fails the test on any breach.
        """
        self.runs += 1
        context = f"{self.context}, {self.camera.root.parent}, run {self.runs}: {how or 'no kill'}"
        result = self.dockd.ingest(
            self.camera.root, kill_after, prefix, watch_lock=watch_lock, from_lock=from_lock
        )
        after = read_cold_state(self.dockd.state_dir, self.camera.root)
        problems = check_invariants(after, self.truth, self.dockd.state_dir)
        if result.killed:
            phase = classify_kill(self.before, after)
            if set(after.sessions) - set(self.before.sessions):
                # A session began, so start-up recovery ran: the last crash's debris is gone.
                left = sorted(set(self.before.temp) & set(after.temp))
                if left:
                    problems.append(f"recovery left partial copies in store/tmp: {left}")
            if problems:
                fail(f"{context} ({phase}): invariant broken", problems, result)
            self.before = after
            return phase, result
        problems += check_finished_run(result, self.before, self.truth)
        problems += check_complete(after, self.truth)
        if problems:
            fail(f"{context}: the run that got to its end left", problems, result)
        verify = self.dockd.verify()
        report = verify.report() if verify.stdout else {}
        if verify.returncode != 0 or report.get("ok") is not True:
            fail(f"{context}: dockd verify failed", [verify.stdout], verify)
        counted = (report["recordings"], report["objects"])
        if counted != (len(self.truth), len({t.sha256 for t in self.truth})):
            fail(f"{context}: dockd verify counted {counted}", [verify.stdout], verify)
        self.before = after
        return None, result


def fail(context: str, problems: Sequence[str], result: RunResult | None = None) -> None:
    lines = [context, *problems]
    if result is not None:
        lines += [f"exit code {result.returncode}", f"stderr: {result.stderr[-3000:]}"]
    pytest.fail("\n  ".join(lines), pytrace=False)
