"""Crash safety: SIGKILL `dockd ingest` anywhere, restart it, lose nothing.

Guards DESIGN invariant 1 (nothing is lost: a crash at any instant leaves
every recording either safe in the store, with its catalog row and log
entry, or still on the camera; start-up recovery removes partial files and
re-queues work) and invariant 4 (idempotent docking: an interrupted session
resumes and ingests nothing twice), through the order of writes of §4a.

Each test docks a camera stand-in (a directory laid out like a GA/T 947
recorder) and kills the real `python -m dockd ingest` again and again.
After every kill, before anything of dockd runs again, it reads what is on
disk cold (`tests/crash_helpers.py`: the catalog from a copy of its files
with sqlite3, the store and camera listed and hashed directly) and checks
that every camera file is either still on the camera with its original
bytes, or has a row whose store object holds those bytes and whose log
entry names them; that nothing in store/sha256 is partial; and that the log
chain is whole. Then it restarts the ingest, which must resume; in between,
the camera may record more files (one of them repeating bytes the store may
already hold). When a run gets to its end un-killed, the scenario is checked
as complete (camera wiped, exactly one row per file, store/tmp empty, no
orphan objects, `dockd verify` clean) and a fresh camera and state
directory start the next one.

- `test_sigkill_at_random_instants_loses_nothing`: SIGKILL after a random
  delay, `DOCKD_CRASH_RUNS` times (default 50).
- `test_sigkill_at_syscall_entry_loses_nothing`: strace delivers SIGKILL on
  entry to the k-th rename, fsync, pwrite64, fdatasync or unlinkat, which
  hits instants too narrow for a timer (copy proven but not renamed; row
  committed but camera file not yet deleted; a SQLite transaction half
  written to the WAL), `DOCKD_CRASH_POINT_RUNS` times (default 20).

Both draw from a seeded `random.Random`, printed at the start; set
`DOCKD_CRASH_SEED` to replay the same cameras and kill points (the instants
a timed kill lands at still vary with the machine's load).
`DOCKD_CRASH_VERBOSE=1` prints every run.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from random import Random

import pytest

from tests.crash_helpers import (
    EXIT_FLAGGED,
    EXIT_OK,
    Camera,
    Dockd,
    Pace,
    Scenario,
    build_camera,
    write_config,
    write_quick_ffprobe,
)

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("DOCKD_CRASH_RUNS", "50"))
POINT_KILLS = int(os.environ.get("DOCKD_CRASH_POINT_RUNS", "20"))
VERBOSE = bool(os.environ.get("DOCKD_CRASH_VERBOSE"))
# A kill is drawn from 0 .. SPREAD x what the run is expected to take, so that
# about one run in six gets to its end and the scenario is checked complete.
SPREAD = 1.2
# Share of kills timed from the process's start rather than from when dockd
# takes the state's lock. Before the lock, the interpreter only loads modules
# (~0.5 s here, often longer than the rest of a resumed run) and a kill there
# can change nothing on disk, so most kills skip that part.
FROM_SPAWN = 0.15


@pytest.fixture
def seed(capsys: pytest.CaptureFixture[str]) -> int:
    text = os.environ.get("DOCKD_CRASH_SEED")
    value = int(text, 0) if text else secrets.randbits(32)
    with capsys.disabled():
        print(f"\ncrash test seed {value} (DOCKD_CRASH_SEED={value} replays it)")
    return value


@dataclass(frozen=True)
class Mode:
    """How a scenario's camera is probed, and how many random recordings it starts with."""

    quick_probe: bool
    random_files: int


# Real ffprobe takes ~0.2 s a file here, ten times the copy itself: with it,
# most timed kills land while a probe runs (object renamed into the store, row
# not yet committed). With a stand-in that answers at once, kills spread over
# copy, rename, commit and wipe, so two scenarios in three use it.
MODES = {"real ffprobe": Mode(False, 10), "quick probe": Mode(True, 30)}
ROTATION = ("real ffprobe", "quick probe", "quick probe")
# After this many kills a scenario is run to its end and checked complete.
KILLS_PER_SCENARIO = 8


def _configs(tmp_path: Path) -> dict[str, Path]:
    quick = str(write_quick_ffprobe(tmp_path / "quick-ffprobe"))
    return {
        name: write_config(
            tmp_path / f"{name.replace(' ', '-')}.toml", quick if mode.quick_probe else "ffprobe"
        )
        for name, mode in MODES.items()
    }


def _summary(
    capsys: pytest.CaptureFixture[str], head: str, phases: Counter[tuple[str, str]]
) -> None:
    with capsys.disabled():
        print(f"{head}; kills landed at:")
        for (how, phase), count in sorted(phases.items()):
            print(f"  {count:4d}  {how:12s}  {phase}")


def test_sigkill_at_random_instants_loses_nothing(
    tmp_path: Path, clip_bank: list[Path], seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL after a random delay; the camera gets new recordings between dockings.

    A delay is drawn uniformly from 0 to 1.2 times what the run is expected
    to take (timed first on a copy of a camera, then learnt from every run
    that gets to its end), mostly counted from when dockd takes the state
    lock (see FROM_SPAWN). After each kill the officer may record more, so
    that resumed runs still have copying to do and the kills keep landing
    inside the work rather than in start-up and shut-down; about one run in
    six, and every scenario's last one, gets to its end.
    """
    rng = Random(seed)
    began = time.monotonic()
    configs = _configs(tmp_path)

    # The first camera of each mode, and how long a run takes, timed on a copy of it.
    cameras: dict[str, Camera] = {}
    paces: dict[str, Pace] = {}
    for name in MODES:
        root = tmp_path / f"s{ROTATION.index(name) + 1}" / "camera"
        cameras[name] = build_camera(root, rng, clip_bank, random_files=MODES[name].random_files)
        copy = tmp_path / "timing" / "camera"
        shutil.copytree(root, copy)
        timing = Dockd(tmp_path / "timing" / "state", configs[name])
        full = timing.ingest(copy, watch_lock=True)
        idle = timing.ingest(copy, watch_lock=True)
        assert full.returncode in (EXIT_OK, EXIT_FLAGGED), full.stderr
        assert idle.returncode == EXIT_OK, idle.stderr
        assert full.after_lock is not None and idle.after_lock is not None
        per_file = max(full.after_lock - idle.after_lock, 0.0) / len(cameras[name].truth)
        paces[name] = Pace(idle.elapsed - idle.after_lock, idle.after_lock, per_file)
        shutil.rmtree(tmp_path / "timing")
        with capsys.disabled():
            print(
                f"{name}: a full run took {full.elapsed:.2f} s, an idle one {idle.elapsed:.2f} s, "
                f"{idle.elapsed - idle.after_lock:.2f} s of it loading Python modules"
            )

    kills = 0
    scenarios = 0
    runs = 0
    phases: Counter[tuple[str, str]] = Counter()
    while kills < KILLS:
        scenarios += 1
        name = ROTATION[(scenarios - 1) % len(ROTATION)]
        root = tmp_path / f"s{scenarios}"
        camera = cameras.pop(name, None) if scenarios <= len(ROTATION) else None
        if camera is None:
            camera = build_camera(
                root / "camera", rng, clip_bank, random_files=MODES[name].random_files
            )
        size = len(camera.truth)
        scenario = Scenario(camera, root / "state", configs[name], f"seed {seed}, {name}")
        pace = paces[name]
        scenario_kills = 0
        while True:
            assert runs < 3 * KILLS + 20, "kills stopped landing: is the lock file seen?"
            left = scenario.files_left
            from_lock = rng.random() >= FROM_SPAWN
            span = SPREAD * (pace.expect(left) + (0.0 if from_lock else pace.imports))
            kill = kills < KILLS and scenario_kills < KILLS_PER_SCENARIO
            delay = rng.uniform(0.0, span) if kill else None
            how = "no kill"
            if delay is not None:
                how = f"SIGKILL {delay:.3f} s after {'the lock' if from_lock else 'spawn'}"
            phase, result = scenario.step(
                kill_after=delay, watch_lock=True, from_lock=from_lock, how=how
            )
            runs += 1
            if VERBOSE:
                with capsys.disabled():
                    print(f"  {root.name} {left} files, {how}: {phase or 'ran to its end'}")
            if phase is None:
                pace.learn(result, left)
                shutil.rmtree(root)  # checked complete; keep the disk small
                break
            kills += 1
            scenario_kills += 1
            phases[name, phase] += 1
            if scenario_kills < KILLS_PER_SCENARIO and kills < KILLS:
                scenario.top_up(rng.randint(0, max(0, size - scenario.files_left)))

    head = (
        f"random kills: {kills} kills in {runs} runs over {scenarios} scenarios, "
        f"{time.monotonic() - began:.1f} s"
    )
    _summary(capsys, head, phases)


# Syscall (a regular expression of strace's) -> what a kill on entry to it interrupts.
CRASH_POINTS = {
    "rename": ("/^rename(at2?)?$", "a proven copy in store/tmp, not yet renamed into the store"),
    "fsync": ("fsync", "a copy or a directory entry about to be made durable"),
    "pwrite64": ("pwrite64", "SQLite writing a transaction into the WAL"),
    "fdatasync": ("fdatasync", "SQLite about to make a commit durable"),
    "unlinkat": ("unlinkat", "a committed recording about to be wiped from the camera"),
}


def _strace() -> str:
    path = shutil.which("strace")
    if path is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    probe = subprocess.run([path, "-qq", "-o", "/dev/null", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode(errors='replace')}")
    return path


def _count_syscalls(log: Path) -> Counter[str]:
    """Per call, the most any one thread made: strace -f counts `when=` per thread
    (the read-back and the rename into the store run in a session's pool thread)."""
    per_thread: Counter[tuple[str, str]] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        tid, _, call = line.partition(" ")
        name = call.strip().split("(", 1)[0]
        for point in CRASH_POINTS:
            if name == point or (point == "rename" and name.startswith("rename")):
                per_thread[tid, point] += 1
    counts: Counter[str] = Counter()
    for (_, point), n in per_thread.items():
        counts[point] = max(counts[point], n)
    return counts


def test_sigkill_at_syscall_entry_loses_nothing(
    tmp_path: Path, clip_bank: list[Path], seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    strace = _strace()
    rng = Random(seed)
    began = time.monotonic()
    config = _configs(tmp_path)["quick probe"]

    def camera(root: Path) -> Camera:
        return build_camera(root / "camera", rng, clip_bank, random_files=8, real_clips=1)

    # How often a whole run makes each call, counted on a copy of the first camera.
    first = camera(tmp_path / "s1")
    shutil.copytree(tmp_path / "s1" / "camera", tmp_path / "count" / "camera")
    counter = Dockd(tmp_path / "count" / "state", config)
    log = tmp_path / "count" / "strace.log"
    traced = ",".join(regex for regex, _ in CRASH_POINTS.values())
    full = counter.ingest(
        tmp_path / "count" / "camera",
        prefix=[strace, "-f", "-qq", "-o", str(log), "-e", traced],
    )
    assert full.returncode == EXIT_OK, full.stderr
    per_run = _count_syscalls(log)
    assert set(per_run) == set(CRASH_POINTS), f"strace saw only {per_run}"
    with capsys.disabled():
        print(f"a full run makes {dict(per_run)}")

    def points() -> Iterator[str]:
        while True:
            yield from rng.sample(list(CRASH_POINTS), len(CRASH_POINTS))

    kills = 0
    scenarios = 0
    runs = 0
    phases: Counter[tuple[str, str]] = Counter()
    chooser = points()
    while kills < POINT_KILLS:
        scenarios += 1
        root = tmp_path / f"s{scenarios}"
        scenario = Scenario(
            first if scenarios == 1 else camera(root),
            root / "state",
            config,
            f"seed {seed}, syscall kills",
        )
        size = len(scenario.truth)
        scenario_kills = 0
        while True:
            prefix: list[str] = []
            how = "no kill"
            point = ""
            if kills < POINT_KILLS and scenario_kills < KILLS_PER_SCENARIO:
                point = next(chooser)
                share = (scenario.files_left + 1) / (size + 1)
                k = rng.randint(1, max(1, math.ceil(per_run[point] * share)))
                regex = CRASH_POINTS[point][0]
                prefix = [strace, "-f", "-qq", "-o", "/dev/null", "-e", f"trace={regex}"]
                prefix += ["-e", f"inject={regex}:signal=KILL:when={k}"]
                how = f"SIGKILL on entry to {point} #{k}"
            left = scenario.files_left
            phase, _ = scenario.step(prefix=prefix, how=how)
            runs += 1
            if VERBOSE:
                with capsys.disabled():
                    print(f"  {root.name} {left} files, {how}: {phase or 'ran to its end'}")
            if phase is None:
                shutil.rmtree(root)  # checked complete; keep the disk small
                break
            kills += 1
            scenario_kills += 1
            phases[point, phase] += 1
            if scenario_kills < KILLS_PER_SCENARIO and kills < POINT_KILLS:
                scenario.top_up(rng.randint(0, max(0, size - scenario.files_left)))

    head = (
        f"syscall kills: {kills} kills in {runs} runs over {scenarios} scenarios, "
        f"{time.monotonic() - began:.1f} s"
    )
    _summary(capsys, head, phases)
