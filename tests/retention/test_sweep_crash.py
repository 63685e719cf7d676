"""Crash safety of the retention sweep: SIGKILL it anywhere, the state stays consistent.

docs/FORMAT.md "Order of writes": the sweep commits each batch's tombstones
with their `retention.deleted` entries first, then unlinks the objects no
live row uses; a crash inside a batch rolls it back, a crash after its
commit leaves objects only tombstones refer to, which the next writer's
start removes. Nothing is deleted twice and no live row ever points at a
missing object.

A state directory holds a few hundred tiny recordings: most pending
deletion with their grace over, some sharing their bytes with another
recording, some held or tagged as evidence, some expired but not yet
marked. A small script opens `Service(config, FixedClock(t))` (the CLI has
no clock override) and sweeps in batches of 5; the test SIGKILLs it at a
random instant after it has opened the state, twice in a row on the same
state (the second run resumes the first's work), and after each kill
reads the state cold, with sqlite3 on a copy of the catalog files, as
tests/crash_helpers.py does. Then a writer starts in-process and sweeps to
the end, and everything must be deleted exactly once.

The state lives on /dev/shm when there is one: a SIGKILL loses no page
cache, so this proves the order of the writes, not their durability, and
tmpfs makes the hundreds of fsyncs of building the state free.
`DOCKD_SWEEP_CRASH_ROUNDS` (default 4) sets the number of rounds and
`DOCKD_SWEEP_CRASH_SEED` replays one seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random
from typing import IO, Any

import pytest

from dockd.clock import FixedClock, isoformat_utc
from dockd.config import Config
from dockd.service import Service
from tests.conftest import NOW
from tests.crash_helpers import REPO, sha256_of
from tests.test_service_retention import Shot, dock, quick

BATCH = 5
MARKED_AT = datetime(2029, 1, 1, tzinfo=UTC)  # every routine recording's 2 years are over
SWEEP_AT = MARKED_AT + timedelta(days=8)  # and the grace of those marked then
FINISH_AT = SWEEP_AT + timedelta(days=8)  # and of those the killed sweeps marked

SCRIPT = """
import json, logging, sys
from pathlib import Path

import structlog

from dockd.clock import FixedClock, parse_utc
from dockd.config import Config, IngestConfig, RetentionConfig
from dockd.service import Service

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
state, now, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = Config(
    state_dir=Path(state),
    ingest=IngestConfig(min_free_bytes=0, change_retry_delay=0.0, ffprobe=sys.argv[4]),
    retention=RetentionConfig(),
)
with Service(config, FixedClock(parse_utc(now))) as svc:
    print("start", flush=True)
    report = svc.sweep(batch=batch)
    print(json.dumps(report.summary()), flush=True)
"""


@dataclass(frozen=True)
class Template:
    """A prepared state directory and what the test knows about it."""

    state_dir: Path
    config: Config
    protected: frozenset[int]  # held or permanent: never to be deleted
    recordings: int


@dataclass
class Cold:
    """A state as a SIGKILL left it, read without dockd."""

    rows: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (sha256, state)
    log: list[tuple[int, bytes, str]] = field(default_factory=list)  # seq, entry, hash
    objects: dict[str, Path] = field(default_factory=dict)

    def entries(self, kind: str) -> list[dict[str, Any]]:
        found = []
        for _, raw, _ in self.log:
            entry = json.loads(raw)
            if entry["kind"] == kind:
                found.append(entry["data"])
        return found

    @property
    def deleted(self) -> set[int]:
        return {i for i, (_, state) in self.rows.items() if state == "deleted"}

    @property
    def tombstone_only_objects(self) -> set[str]:
        """Objects on disk that only deleted rows refer to (a crash after a commit)."""
        alive = {sha for sha, state in self.rows.values() if state != "deleted"}
        return set(self.objects) - alive


def read_cold(state_dir: Path) -> Cold:
    cold = Cold()
    with tempfile.TemporaryDirectory() as scratch:
        for f in state_dir.glob("catalog.sqlite*"):
            if not f.name.endswith("-shm"):  # SQLite rebuilds the index from the WAL
                shutil.copyfile(f, Path(scratch) / f.name)
        db = sqlite3.connect(Path(scratch) / "catalog.sqlite")
        try:
            for i, sha, state in db.execute("SELECT id, sha256, retention_state FROM recordings"):
                cold.rows[int(i)] = (str(sha), str(state))
            cold.log = [
                (int(s), bytes(e), str(h))
                for s, e, h in db.execute("SELECT seq, entry, hash FROM log ORDER BY rowid")
            ]
        finally:
            db.close()
    for top, _dirs, names in os.walk(state_dir / "store" / "sha256"):
        for name in names:
            cold.objects[name] = Path(top) / name
    return cold


def problems_in(cold: Cold, template: Template) -> list[str]:
    """What must hold at every instant, wherever the sweep died."""
    problems: list[str] = []
    prev = "0" * 64
    for expected, (seq, raw, digest) in enumerate(cold.log, start=1):
        entry = json.loads(raw)
        if seq != expected or hashlib.sha256(raw).hexdigest() != digest or entry["prev"] != prev:
            problems.append(f"log: entry {seq} breaks the chain")
        prev = digest
    for rid, (sha, state) in sorted(cold.rows.items()):
        if state != "deleted":
            path = cold.objects.get(sha)
            if path is None:
                problems.append(f"recording {rid} is {state} but its object is gone")
            elif sha256_of(path)[0] != sha:
                problems.append(f"recording {rid}: object damaged")
        if rid in template.protected and state != "live":
            problems.append(f"recording {rid} is protected but {state}")
    logged: dict[int, int] = {}
    for data in cold.entries("retention.deleted"):
        rid = int(str(data["recording"]))
        logged[rid] = logged.get(rid, 0) + 1
        if cold.rows.get(rid, ("", ""))[1] != "deleted":
            problems.append(f"retention.deleted entry for recording {rid}, which is not deleted")
        if data["sha256"] != cold.rows.get(rid, ("", ""))[0] or data["pending_since"] is None:
            problems.append(f"retention.deleted entry for recording {rid} is wrong: {data}")
    twice = sorted(rid for rid, n in logged.items() if n > 1)
    if twice:
        problems.append(f"recordings deleted more than once: {twice}")
    unlogged = sorted(cold.deleted - set(logged))
    if unlogged:
        problems.append(f"tombstones without a retention.deleted entry: {unlogged}")
    pending_logged: set[int] = set()
    for data in cold.entries("retention.pending"):
        pending_logged |= {int(i) for i in data["recordings"]}
    never_marked = sorted(
        i for i, (_, state) in cold.rows.items() if state != "live" and i not in pending_logged
    )
    if never_marked:
        problems.append(f"pending or deleted, but no retention.pending entry: {never_marked}")
    strays = sorted(set(cold.objects) - {sha for sha, _ in cold.rows.values()})
    if strays:
        problems.append(f"objects no row refers to: {strays}")
    if len(cold.rows) != template.recordings:
        problems.append(f"{len(cold.rows)} rows, expected {template.recordings}")
    return problems


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="dockd-sweep-crash-", dir=base) as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def template(scratch: Path) -> Template:
    """260 recordings, 30 of them sharing bytes with another; 20 protected; most pending."""
    rng = Random(4711)
    folder = scratch / "template"
    config = quick(Config(state_dir=folder / "state"))
    config = dataclasses.replace(
        config, ingest=dataclasses.replace(config.ingest, min_free_bytes=0, change_retry_delay=0.0)
    )
    clock = FixedClock(NOW)
    base = datetime(2026, 11, 20, tzinfo=UTC)
    with Service(config, clock) as svc:
        cam1 = [
            Shot(base + timedelta(minutes=3 * i), rng.randbytes(rng.randrange(32, 600)), i + 1)
            for i in range(230)
        ]
        cam2 = [
            Shot(base + timedelta(minutes=3 * i + 1), shot.data, i + 1, "054321", "DSJ0002")
            for i, shot in enumerate(rng.sample(cam1, 30))
        ]
        recs = dock(svc, folder / "cam1", "CAM1", cam1) + dock(svc, folder / "cam2", "CAM2", cam2)
        chosen = rng.sample([r.id for r in recs], 20)
        held, evidence = chosen[:10], chosen[10:]
        svc.set_hold(ids=held, reason="litigation")
        svc.tag(evidence, categories=("evidence",))
        clock.current = MARKED_AT
        marked = svc.sweep()
        assert len(marked.marked) == len(recs) - 20
        # Docked late: expired already, marked by the sweep under test.
        late = [
            Shot(base + timedelta(minutes=5 * i), rng.randbytes(100), i + 1, "099999", "DSJ0003")
            for i in range(20)
        ]
        recs += dock(svc, folder / "cam3", "CAM3", late)
        assert svc.verify().ok
    return Template(folder / "state", config, frozenset(chosen), len(recs))


class Sweeper:
    """The sweep script as a killable subprocess."""

    def __init__(self, scratch: Path, config: Config) -> None:
        self.script = scratch / "sweep.py"
        self.script.write_text(SCRIPT)
        self.ffprobe = config.ingest.ffprobe
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKD_")}

    def run(
        self, state_dir: Path, kill_after: float | None = None, prefix: list[str] | None = None
    ) -> Run:
        """Sweep; SIGKILL it `kill_after` seconds after its Service is open (and recovered),
        or let `prefix` (strace) kill it."""
        argv = [sys.executable, str(self.script), str(state_dir), isoformat_utc(SWEEP_AT)]
        argv += [str(BATCH), self.ffprobe]
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                [*(prefix or []), *argv],
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=REPO,
                env=self.env,
                start_new_session=True,
            )
            assert proc.stdout is not None
            line = proc.stdout.readline()
            opened = time.monotonic()
            assert line == b"start\n", (line, proc.wait(), _tail(err))
            if kill_after is not None:
                try:
                    proc.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
            out = proc.stdout.read()
            code = proc.wait(timeout=120)
            elapsed = time.monotonic() - opened
            if code != -signal.SIGKILL:
                assert code == 0, (code, _tail(err))
            summary = json.loads(out) if code == 0 else None
            return Run(code == -signal.SIGKILL, elapsed, summary, _tail(err))


@dataclass(frozen=True)
class Run:
    killed: bool
    seconds: float  # from the Service being open to the end
    summary: dict[str, object] | None  # SweepReport.summary() of a run that got to its end
    stderr: str


def _tail(err: IO[bytes]) -> str:
    err.seek(0)
    return err.read()[-3000:].decode("utf-8", "replace")


def _strace() -> str | None:
    path = shutil.which("strace")
    if path is None:
        return None
    probe = subprocess.run([path, "-qq", "-o", "/dev/null", "true"], capture_output=True)
    return path if probe.returncode == 0 else None


def copy_state(template: Template, target: Path) -> Path:
    shutil.copytree(template.state_dir, target, symlinks=True)
    return target


def test_sigkill_during_the_sweep_leaves_a_consistent_state(
    template: Template, scratch: Path
) -> None:
    seed = int(os.environ.get("DOCKD_SWEEP_CRASH_SEED") or secrets.randbits(32))
    rounds = int(os.environ.get("DOCKD_SWEEP_CRASH_ROUNDS", "4"))
    print(f"DOCKD_SWEEP_CRASH_SEED={seed}")
    rng = Random(seed)
    sweeper = Sweeper(scratch, template.config)
    strace = _strace()

    # One sweep to its end, to learn how long one takes on this machine now.
    calibration = copy_state(template, scratch / "calibration")
    full = sweeper.run(calibration)
    assert full.summary is not None
    unlinks = int(str(full.summary["objects_removed"]))
    cold = read_cold(calibration)
    assert problems_in(cold, template) == []
    to_delete = set(cold.deleted)
    assert len(to_delete) == template.recordings - 20 - 20
    assert 0 < unlinks < len(to_delete), "some deleted recordings share their bytes"
    shutil.rmtree(calibration)

    landed: list[str] = []
    for n in range(rounds):
        state = copy_state(template, scratch / f"round{n}")
        leftover: set[str] = set()
        for attempt in (1, 2):
            if attempt == 1 and strace and n % 2 == 0:
                # Right between a batch's commit and the unlink of its k-th object:
                # an instant too narrow for a timer to hit often.
                k = rng.randint(1, unlinks)
                regex = "/^unlink(at)?$"
                prefix = [strace, "-qq", "-o", "/dev/null", "-e", f"trace={regex}"]
                prefix += ["-e", f"inject={regex}:signal=KILL:when={k}"]
                run = sweeper.run(state, prefix=prefix)
                how = f"SIGKILL on entry to unlink #{k}"
                assert run.killed, f"strace did not kill at unlink #{k}"
            else:
                delay = rng.uniform(0, full.seconds * 1.15)
                run = sweeper.run(state, kill_after=delay)
                how = f"SIGKILL after {delay:.3f} s"
            cold = read_cold(state)
            problems = problems_in(cold, template)
            # The second run started as a writer: the first one's leftovers are gone.
            problems += [
                f"tombstoned object not removed at start: {sha}"
                for sha in sorted(leftover & set(cold.objects))
            ]
            context = f"seed {seed}, round {n}, run {attempt}, {how}, killed={run.killed}"
            assert problems == [], f"{context}\n" + "\n".join(problems) + f"\n{run.stderr}"
            leftover = cold.tombstone_only_objects
            done = len(cold.deleted & to_delete)
            if not run.killed:
                landed.append("completed")
            elif done == 0:
                landed.append("before any deletion")
            elif done == len(to_delete) and not leftover:
                landed.append("after the last deletion")
            else:
                landed.append("between batches" if not leftover else "inside a batch")

        # A writer starts (recovery), sweeps to the end, and once more after the grace.
        clock = FixedClock(SWEEP_AT)
        with Service(template.config.with_state_dir(state), clock) as svc:
            svc.sweep()
            clock.current = FINISH_AT
            svc.sweep()
            report = svc.verify()
            assert report.ok and report.orphans == (), report
        cold = read_cold(state)
        assert problems_in(cold, template) == []
        everything = set(cold.rows) - template.protected
        assert cold.deleted == everything
        logged = [int(str(d["recording"])) for d in cold.entries("retention.deleted")]
        assert sorted(logged) == sorted(everything), "each recording deleted exactly once"
        alive = {cold.rows[i][0] for i in template.protected}
        assert set(cold.objects) == alive
        shutil.rmtree(state)
    print("kills landed:", landed)
    assert any(where not in ("completed", "before any deletion") for where in landed), landed
    if strace and rounds:
        assert "inside a batch" in landed, landed
