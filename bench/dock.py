"""Dock benchmark: what the daemon adds to an ingest, on the same FAT32 camera image.

Run as `make bench` (`.venv/bin/python bench/dock.py`), as root on a host with
/dev/fuse, fusefat, losetup and umockdev; `--help` lists the options. Like
bench/ingest.py this is a benchmark, not a test: it prints figures measured
side by side in one run. It exits non-zero only when something is *wrong* (a
run fails, a file is not ingested or not wiped, a stored hash differs from
the bytes written), never because of a figure. Without root, /dev/fuse or
umockdev it says so and exits 0, as the tests skip.

What it does, in one work directory under `--dir` (deleted at the end):

1. Builds one FAT32 image (tests/volumes.py: `mkfs.vfat`, then `mcopy`)
   holding `--files` files of seeded random bytes, `--size` in all, in
   DCIM/100MEDIA, named as a GA/T 947 camera names them. Random bytes are no
   media: ffprobe rejects each file at once and dockd flags it
   `unreadable_media`, so the per-file probe costs little here
   (bench/ingest.py measures it with real MP4 headers).
2. Before every timed run: a fresh copy of that image on a fresh loop device
   (the wipe empties it), a fresh state directory, then `sync` and
   `echo 3 > /proc/sys/vm/drop_caches`.
3. Times, on that same content, through the same FUSE driver started with
   the daemon's own command line (`fusefat -f -s`, from
   dockd.devices.mount.fuse_mount_argv):
   a) cat: `cat` of every file on a read-only mount > /dev/null, the floor
      for reading the volume through FUSE;
   b) CLI: `dockd -v ingest MOUNT --serial S --json` on a read-write mount,
      one session: scan, copy, verify, probe, wipe. The fusefat mount and
      unmount around a) and b) are timed apart, not in their figures;
   c) daemon: `dockd -v run` with the FUSE mount back end, under
      `umockdev-wrapper` with a fresh testbed (tests/devices/udev_testbed.py),
      started and idle before the cache drop; timed from `add_camera` (the
      udev `add` of a camera whose DEVNAME is the loop device) until the
      daemon's `status` shows the slot "done", asked every 0.1 s: udev
      event, mount read-only, listing, scan, copy, verify, probe, remount
      read-write, wipe, remount read-only, session end, unmount.
   Both dockd runs log JSON; the event timestamps split their times into
   phases, printed side by side, among them the daemon's preparation from
   `dock.detected` to `session.start` (mount, listing, scan).
4. Peak memory (VmHWM from /proc/PID/status): the daemon's, read just before
   it is stopped (umockdev-wrapper is a shell script that execs env, which
   execs dockd, so the pid Popen returned is the daemon's; checked against
   the pid `status` reports); its fusefat children's, polled every 0.05 s
   while they live; the CLI's, polled; our own fusefat's, read just before
   unmounting.
5. Where the time goes besides the phases: CPU seconds of each process (the
   daemon's growth over the session, the others' when they exit) and the
   bytes fusefat read from the medium (/proc/PID/io), which show whether a
   file is read from the camera once or twice.

`dockd status --json` is one Python start-up per call (0.6 to 1.1 s here):
asked every 0.1 s it would keep a core busy beside the daemon on a 2-core
dock. So the status is asked over the daemon's socket with the
request the CLI sends (dockd.runner.client.request); `--poll-cli` runs the CLI instead.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

MiB = 1 << 20
GiB = 1 << 30
CHUNK = MiB
MB = 1e6  # rates are printed in MB/s (10^6 bytes per second)
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the umockdev and FAT helpers live in tests/

import pytest  # noqa: E402  (tests/volumes.py turns a refused losetup into pytest.skip)

from bench import procfs  # noqa: E402
from tests.devices.udev_testbed import MockCamera, UdevTestbed, umockdev_missing  # noqa: E402
from tests.volumes import fat_files, fat_put, is_mounted, loop_device, make_fat32_image  # noqa: E402

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
SERIAL = "BENCH0001"
FOLDER = "DCIM/100MEDIA"
ZONE = "Asia/Shanghai"
POLL = 0.1  # seconds between two status requests to the daemon
HWM_POLL = 0.05  # seconds between two VmHWM reads of a process that may exit
TOOLS = (
    "mkfs.vfat",
    "mcopy",
    "mmd",
    "mdir",
    "fusefat",
    "fusermount",
    "losetup",
    "umockdev-wrapper",
    "cat",
    "ffprobe",
)


# -- the image ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    path: Path
    files: dict[str, str]  # path on the volume -> sha256 of its bytes, in volume order
    total_bytes: int
    image_bytes: int
    cluster_bytes: int  # as mkfs.vfat chose it; fusefat reads a cluster at a time


def parse_size(text: str) -> int:
    """Bytes from "1G", "200M", "512MiB", "4096" (binary multiples)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 1G, 200M)")
    return int(float(m[1]) * 1024 ** " KMGT".index(m[2].upper() or " "))


def write_clip(path: Path, size: int, rng: random.Random, head: bytes = b"") -> str:
    """`head`, then seeded random bytes up to `size` bytes in all; their SHA-256."""
    digest = hashlib.sha256(head)
    with path.open("wb") as f:
        f.write(head)
        left = size - len(head)
        while left > 0:
            data = rng.randbytes(min(CHUNK, left))
            digest.update(data)
            f.write(data)
            left -= len(data)
    return digest.hexdigest()


def build_image(work: Path, total: int, count: int, seed: int) -> Image:
    """`count` files of seeded random bytes, `total` in all, on a fresh FAT32 image."""
    from dockd.demo import gat947_name

    sizes = [total // count + (1 if i < total % count else 0) for i in range(count)]
    # Data, a cluster of slack per file, 2 % for the FATs, and mkfs.vfat's FAT32 minimum.
    image_mib = math.ceil((total + count * 64 * 1024) * 1.02 / MiB) + 64
    path = make_fat32_image(work / "camera.img", image_mib)
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=6)
    scratch = work / "file.tmp"
    files: dict[str, str] = {}
    for i, size in enumerate(sizes):
        name = gat947_name("012345", "DSJ0001", start + timedelta(minutes=i), i + 1, ZONE)
        files[f"{FOLDER}/{name}"] = write_clip(scratch, size, rng)
        fat_put(path, f"{FOLDER}/{name}", scratch)
    scratch.unlink()
    with path.open("rb") as f:
        boot = f.read(512)
    cluster = int.from_bytes(boot[11:13], "little") * boot[13]  # bytes/sector * sectors/cluster
    return Image(path, files, total, image_mib * MiB, cluster)


# -- page cache, processes, mounts ---------------------------------------------------------


def drop_caches() -> str:
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
    except OSError as exc:
        raise SystemExit(
            f"bench: cannot drop the page cache ({exc.strerror}): run as root"
        ) from None
    return f"sync + echo 3 > {DROP_CACHES}"


def proc_hwm(pid: int) -> tuple[str, int]:
    """(command name, VmHWM in KiB) of a live process; ("", 0) if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(errors="replace")
    except OSError:
        return "", 0
    name, hwm = "", 0
    for line in text.splitlines():
        if line.startswith("Name:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return name, hwm


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of `pid` itself and of its reaped children; 0s if gone.

    Also readable for a zombie, which is how the final figures of our own
    children are read (see wait_exit).
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = text[text.rindex(")") + 2 :].split()  # fields 3 (state) onwards, see proc(5)
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS


def proc_rchar(pid: int) -> int:
    """Bytes `pid` got from read(2) and friends (/proc/PID/io rchar); 0 if gone."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def fuse_mode(pid: int) -> str:
    """A fusefat's mode ("ro" or "rw") from its -o options; "" for anything else."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    if b"-o" not in argv[:-1]:
        return ""
    return "ro" if argv[argv.index(b"-o") + 1].split(b",")[0] == b"ro" else "rw"


def children(pid: int) -> list[int]:
    """Child pids of every thread of `pid` (the daemon forks from worker threads)."""
    return procfs.children(f"/proc/{pid}")


def start_daemon(
    tb: UdevTestbed, dockd: Path, config: Path, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """`dockd -v run` under umockdev-wrapper, its output into `log`."""
    return subprocess.Popen(
        tb.wrap([str(dockd), "--config", str(config), "-v", "run"]),
        env=tb.env(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


@dataclass
class Seen:
    name: str
    mode: str  # fusefat's "ro" or "rw"; "" for other processes
    hwm_kib: int = 0
    rchar: int = 0


class ProcWatch:
    """VmHWM and bytes read of the processes `pids()` names, polled every HWM_POLL s.

    For processes that exit on their own: the figures are the last ones seen,
    at most HWM_POLL s old.
    """

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.seen: dict[int, Seen] = {}
        self._pids = pids
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            for pid in self._pids():
                name, hwm = proc_hwm(pid)
                if not name:
                    continue
                seen = self.seen.setdefault(pid, Seen(name, fuse_mode(pid)))
                seen.hwm_kib = max(seen.hwm_kib, hwm)
                seen.rchar = max(seen.rchar, proc_rchar(pid))
            if self._done.wait(HWM_POLL):
                return

    def stop(self) -> ProcWatch:
        self._done.set()
        self._thread.join()
        return self

    def peak_kib(self, name: str) -> int:
        return max((s.hwm_kib for s in self.seen.values() if s.name == name), default=0)

    def read_bytes(self, name: str, mode: str | None = None) -> int:
        found = [s for s in self.seen.values() if s.name == name]
        return sum(s.rchar for s in found if mode is None or s.mode == mode)


@dataclass(frozen=True)
class Exited:
    code: int
    cpu: float  # CPU seconds of the process itself
    children_cpu: float  # and of the children it reaped
    rchar: int


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> Exited:
    """Wait for our child to exit (killing it after `timeout` s), read its final
    figures from /proc while it is a zombie (waitid WNOWAIT), then reap it."""
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
    finally:
        timer.cancel()
    cpu, children_cpu = proc_cpu(process.pid)
    rchar = proc_rchar(process.pid)
    return Exited(process.wait(), cpu, children_cpu, rchar)


def _fusermount() -> str:
    return shutil.which("fusermount3") or shutil.which("fusermount") or "fusermount"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    top = os.path.realpath(path)
    with open("/proc/self/mounts", encoding="utf-8") as f:
        points = [
            re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[1])
            for line in f
        ]
    return sorted((p for p in points if p == top or p.startswith(top + "/")), reverse=True)


def unmount_under(path: Path) -> None:
    """Lazily unmount whatever is still mounted at or below `path` (cleanup only)."""
    for point in mounts_under(path):
        code = subprocess.run([_fusermount(), "-u", "-z", point], capture_output=True).returncode
        if code:
            subprocess.run(["umount", "-l", point], capture_output=True)


@dataclass
class OwnMount:
    """A fusefat we started (a and b), and what it cost."""

    path: Path
    process: subprocess.Popen[bytes]
    mount_seconds: float = 0.0
    unmount_seconds: float = 0.0
    hwm_kib: int = 0
    exited: Exited | None = None


def _unmount(target: Path, process: subprocess.Popen[bytes]) -> Exited | None:
    if is_mounted(target):
        code = subprocess.run([_fusermount(), "-u", str(target)], capture_output=True).returncode
        if code:
            subprocess.run([_fusermount(), "-u", "-z", str(target)], capture_output=True)
    if process.returncode is not None:
        return None
    # fusefat writes its last changes when the kernel lets go, then exits.
    return wait_exit(process, timeout=60)


@contextlib.contextmanager
def fuse_mount(device: str, target: Path, mode: str, errors: Path) -> Iterator[OwnMount]:
    """fusefat on `device` at `target`, started as the daemon starts it; timed both ways.

    Its stdout (a banner) goes nowhere and its stderr (a line per cluster read)
    to a file; the daemon drops the one and drains the other through a pipe.
    """
    from dockd.devices.mount import fuse_mount_argv

    target.mkdir(parents=True, exist_ok=True)
    argv = fuse_mount_argv("vfat", device, target, mode)
    with errors.open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
    mount = OwnMount(target, process)
    try:
        while not is_mounted(target):
            if process.poll() is not None:
                raise SystemExit(
                    f"bench: {' '.join(argv)} exited {process.returncode}: {tail(errors, 5)}"
                )
            if time.perf_counter() - start > 30:
                raise SystemExit(f"bench: {target} not mounted after 30 s")
            time.sleep(0.01)
        mount.mount_seconds = time.perf_counter() - start
        yield mount
        mount.hwm_kib = proc_hwm(process.pid)[1]
        start = time.perf_counter()
        mount.exited = _unmount(target, process)
        mount.unmount_seconds = time.perf_counter() - start
    finally:
        _unmount(target, process)


@contextlib.contextmanager
def attached(image: Path) -> Iterator[str]:
    """tests/volumes.py's loop_device, with a refused losetup as a bench error."""
    try:
        with loop_device(image) as device:
            yield device
    except pytest.skip.Exception as exc:
        raise SystemExit(f"bench: {exc.msg}") from None


# -- dockd ------------------------------------------------------------------------------------


def find_dockd(given: Path | None) -> Path:
    if given is not None:
        return given
    for candidate in (ROOT / ".venv" / "bin" / "dockd", Path(sys.executable).parent / "dockd"):
        if candidate.exists():
            return candidate
    found = shutil.which("dockd")
    if found is None:
        raise SystemExit("bench: cannot find the dockd executable (run `make setup`)")
    return Path(found)


def write_config(run_dir: Path) -> Path:
    """The same dockd.toml for the CLI and the daemon: FUSE mounts, JSON logs."""
    path = run_dir / "dockd.toml"
    path.write_text(
        f"state_dir = {json.dumps(str(run_dir / 'state'))}\n"
        "[ingest]\nchange_retry_delay = 0\n"
        f"[daemon]\nruntime_dir = {json.dumps(str(run_dir / 'run'))}\n"
        'mount_backend = "fuse"\n'
        '[log]\nformat = "json"\n',
        encoding="utf-8",
    )
    return path


@dataclass(frozen=True)
class Event:
    wall: float  # seconds since the epoch
    name: str
    fields: dict[str, Any]


def read_events(log: Path) -> list[Event]:
    """dockd's JSON log lines (anything else in the file is skipped)."""
    events = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
            wall = datetime.fromisoformat(obj["timestamp"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        events.append(Event(wall, str(obj.get("event", "")), obj))
    return events


Mark = tuple[str, float | None]


def _first(
    events: Sequence[Event], name: str, after: float | None = None, **fields: str
) -> float | None:
    for e in events:
        if after is not None and e.wall < after:
            continue
        if e.name == name and all(e.fields.get(k) == v for k, v in fields.items()):
            return e.wall
    return None


def _last(events: Sequence[Event], *names: str) -> float | None:
    walls = [e.wall for e in events if e.name in names]
    return walls[-1] if walls else None


def phases(start: float, marks: Sequence[Mark]) -> dict[str, float | None]:
    """Time from the previous mark that was found to each mark (None: not in the log)."""
    out: dict[str, float | None] = {}
    previous = start
    for name, wall in marks:
        out[name] = None if wall is None else wall - previous
        previous = wall if wall is not None else previous
    return out


FILE_DONE = ("ingest.file.ingested", "ingest.file.flagged")
# The rows of the phase table; the CLI (b) and the daemon (c) each have some of them.
PHASES = (
    "udev add -> dock.detected",
    "mount read-only",
    "-> session.start (start-up/listing, scan)",
    "copy + verify + probe, all files",
    "remount read-write",
    "wipe (delete proven files)",
    "remount read-only",
    "session row + log entry -> session.done",
    "checkpoint signed",
    "unmount",
    "-> slot done (c) / exit (b)",
    "status request saw done",
)


def cli_phases(events: Sequence[Event], start: float, end: float) -> dict[str, float | None]:
    return phases(
        start,
        [
            (PHASES[2], _first(events, "session.start")),
            (PHASES[3], _last(events, *FILE_DONE)),
            (PHASES[5], _last(events, "ingest.file.wiped")),
            (PHASES[7], _first(events, "session.done")),
            (PHASES[8], _first(events, "checkpoint.signed", _first(events, "session.done"))),
            (PHASES[10], end),
        ],
    )


def daemon_phases(events: Sequence[Event], start: float, end: float) -> dict[str, float | None]:
    return phases(
        start,
        [
            (PHASES[0], _first(events, "dock.detected")),
            (PHASES[1], _first(events, "mount.mounted")),
            (PHASES[2], _first(events, "session.start")),
            (PHASES[3], _last(events, *FILE_DONE)),
            (PHASES[4], _first(events, "mount.remounted", mode="rw")),
            (PHASES[5], _last(events, "ingest.file.wiped")),
            (PHASES[6], _first(events, "mount.remounted", mode="ro")),
            (PHASES[7], _first(events, "session.done")),
            (PHASES[8], _first(events, "checkpoint.signed", _first(events, "session.done"))),
            (PHASES[9], _first(events, "mount.unmounted")),
            (PHASES[10], _first(events, "slot.state", state="done")),
            (PHASES[11], end),
        ],
    )


def preparation(events: Sequence[Event]) -> float | None:
    """The daemon's dock.detected -> session.start: mount, listing, health, queue, scan."""
    detected, started = _first(events, "dock.detected"), _first(events, "session.start")
    return None if detected is None or started is None else started - detected


def check_recordings(rows: Iterable[dict[str, Any]], image: Image, what: str) -> None:
    got = {str(r["source_path"]): str(r["sha256"]) for r in rows}
    if got != image.files:
        bad = sorted(k for k in got.keys() | image.files.keys() if got.get(k) != image.files.get(k))
        raise SystemExit(
            f"bench: {what}: {len(bad)} file(s) missing or hashed wrong, e.g. {bad[:3]}"
        )


def check_wiped(copy: Path, what: str) -> None:
    left = fat_files(copy)  # mtools reads the image itself, not through FUSE
    if left:
        raise SystemExit(
            f"bench: {what}: {len(left)} file(s) left on the image, e.g. {sorted(left)[:3]}"
        )


# -- the three methods ------------------------------------------------------------------------


@dataclass
class RunResult:
    seconds: float
    phases: dict[str, float | None] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)  # see FIGURES
    peaks_kib: dict[str, int] = field(default_factory=dict)  # peak RSS by process role


# Per-run figures besides the timed seconds (medians are printed).
FIGURES = {
    "mount_s": "fusefat mount, s",
    "unmount_s": "fusefat unmount, s",
    "preparation_s": "dock.detected -> session.start, s",
    "cpu_reader_s": "CPU s, reader process (a: cat, b/c: dockd)",
    "cpu_children_s": "CPU s, children (ffprobe; c: + fusefat)",
    "cpu_fusefat_s": "CPU s, fusefat we started",
    "cpu_total_s": "CPU s, all of these",
    "fuse_read_mb": "MB read from the medium by fusefat",
    "fuse_rw_read_mb": "  of it by the read-write one (c: the wipe)",
}


def fresh_run(image: Image, work: Path, label: str) -> Path:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work))
    shutil.copyfile(image.path, run_dir / "camera.img")
    return run_dir


def own_fusefat(m: OwnMount) -> dict[str, float]:
    exited = m.exited
    return {
        "mount_s": m.mount_seconds,
        "unmount_s": m.unmount_seconds,
        "cpu_fusefat_s": exited.cpu if exited else 0.0,
        "fuse_read_mb": exited.rchar / MB if exited else 0.0,
    }


def run_cat(image: Image, work: Path) -> RunResult:
    run_dir = fresh_run(image, work, "cat")
    try:
        with attached(run_dir / "camera.img") as device:
            drop_caches()
            with fuse_mount(device, run_dir / "mnt", "ro", run_dir / "fusefat.err") as m:
                paths = [str(m.path / rel) for rel in image.files]
                start = time.perf_counter()
                proc = subprocess.Popen(["cat", "--", *paths], stdout=subprocess.DEVNULL)
                cat = wait_exit(proc, run_timeout(image))
                seconds = time.perf_counter() - start
                if cat.code != 0:
                    raise SystemExit(f"bench: cat exited {cat.code}")
        figures = own_fusefat(m)
        figures["cpu_reader_s"] = cat.cpu
        figures["cpu_total_s"] = cat.cpu + figures["cpu_fusefat_s"]
        return RunResult(seconds, figures=figures, peaks_kib={"fusefat (a)": m.hwm_kib})
    finally:
        unmount_under(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def run_cli(dockd: Path, image: Image, work: Path) -> RunResult:
    run_dir = fresh_run(image, work, "cli")
    config = write_config(run_dir)
    out_path, log_path = run_dir / "stdout", run_dir / "dockd.log"
    try:
        with attached(run_dir / "camera.img") as device:
            drop_caches()
            with (
                fuse_mount(device, run_dir / "mnt", "rw", run_dir / "fusefat.err") as m,
                out_path.open("wb") as out,
                log_path.open("wb") as log,
            ):
                cmd = [str(dockd), "--config", str(config), "-v", "ingest", str(m.path)]
                cmd += ["--serial", SERIAL, "--json"]
                wall0, start = time.time(), time.perf_counter()
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=log)
                watch = ProcWatch(lambda: [proc.pid, *children(proc.pid)])
                try:
                    cli = wait_exit(proc, run_timeout(image))
                finally:
                    watch.stop()
                seconds, wall1 = time.perf_counter() - start, time.time()
            # 3 = ingested but flagged: random bytes are unreadable_media to ffprobe.
            if cli.code not in (0, 3):
                raise SystemExit(f"bench: dockd ingest exited {cli.code}:\n{tail(log_path)}")
            report = json.loads(out_path.read_text())
            counts = report["counts"]
            n = len(image.files)
            if counts["ingested"] != n or counts["wiped"] != n or counts["failed"]:
                raise SystemExit(
                    f"bench: dockd ingest did not ingest and wipe every file: {counts}"
                )
            check_recordings(report["recordings"], image, "dockd ingest")
            check_wiped(run_dir / "camera.img", "dockd ingest")
        figures = own_fusefat(m)
        figures["cpu_reader_s"] = cli.cpu
        figures["cpu_children_s"] = cli.children_cpu
        figures["cpu_total_s"] = cli.cpu + cli.children_cpu + figures["cpu_fusefat_s"]
        return RunResult(
            seconds,
            cli_phases(read_events(log_path), wall0, wall1),
            figures,
            peaks_kib={
                "dockd ingest (b)": watch.peak_kib("dockd"),
                "fusefat (b)": m.hwm_kib,
                "ffprobe (b)": watch.peak_kib("ffprobe"),
            },
        )
    finally:
        unmount_under(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def run_timeout(image: Image) -> float:
    return 300 + image.total_bytes / (2 * MB)  # slower than 2 MB/s is broken


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


class StatusPoller:
    """The daemon's `status`: over its socket (as the CLI asks), or by running the CLI."""

    def __init__(self, dockd: Path, config: Path, use_cli: bool) -> None:
        from dockd.config import load_config
        from dockd.runner.client import socket_path

        self.dockd, self.config, self.use_cli = dockd, config, use_cli
        self.socket = socket_path(load_config(config))

    def __call__(self) -> dict[str, Any] | None:
        if self.use_cli:
            proc = subprocess.run(
                [str(self.dockd), "--config", str(self.config), "status", "--json"],
                capture_output=True,
                text=True,
                timeout=60,
            )
            return json.loads(proc.stdout) if proc.returncode == 0 else None
        from dockd.errors import DockdError
        from dockd.runner.client import request

        try:
            result: dict[str, Any] = request(self.socket, "status", timeout=10.0)
        except DockdError:
            return None
        return result


def slot_of(status: dict[str, Any] | None, camera: MockCamera) -> dict[str, Any] | None:
    slots = (status or {}).get("slots", [])
    return next((s for s in slots if s["slot"] == camera.slot), None)


def run_daemon(dockd: Path, image: Image, work: Path, poll_cli: bool) -> RunResult:
    run_dir = fresh_run(image, work, "daemon")
    config = write_config(run_dir)
    log_path = run_dir / "dockd.log"
    status = StatusPoller(dockd, config, poll_cli)
    proc: subprocess.Popen[bytes] | None = None
    try:
        with (
            attached(run_dir / "camera.img") as device,
            UdevTestbed(timeout=30) as tb,
            log_path.open("wb") as log,
        ):
            try:
                proc = start_daemon(tb, dockd, config, log)
                pid = wait_daemon(proc, status, log_path)
                drop_caches()
                cpu0, children0 = proc_cpu(pid)
                wall0, start = time.time(), time.perf_counter()
                camera = tb.add_camera(SERIAL, port=1, devnode=device)
                watch = ProcWatch(lambda: children(pid))
                try:
                    slot = wait_done(proc, status, camera, image, log_path)
                finally:
                    watch.stop()
                seconds, wall1 = time.perf_counter() - start, time.time()
                # Just before stopping it: its peak, and this session's share of its CPU.
                daemon_hwm = proc_hwm(pid)[1]
                cpu1, children1 = proc_cpu(pid)
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=90)
            finally:
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait(30)
                unmount_under(run_dir / "run")
            if code != 0:
                raise SystemExit(f"bench: the daemon exited {code} on SIGTERM:\n{tail(log_path)}")
            n = len(image.files)
            counts = slot["counts"]
            if slot["state"] != "done" or counts["ingested"] != n or counts["wiped"] != n:
                raise SystemExit(f"bench: the daemon did not ingest and wipe every file: {slot}")
            listed = subprocess.run(
                [str(dockd), "--config", str(config), "list", "--json"],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
            check_recordings(json.loads(listed.stdout), image, "the daemon")
            check_wiped(run_dir / "camera.img", "the daemon")
        events = read_events(log_path)
        figures = {
            "cpu_reader_s": cpu1 - cpu0,
            "cpu_children_s": children1 - children0,
            "cpu_total_s": cpu1 - cpu0 + children1 - children0,
            "fuse_read_mb": watch.read_bytes("fusefat") / MB,
            "fuse_rw_read_mb": watch.read_bytes("fusefat", "rw") / MB,
        }
        prep = preparation(events)
        if prep is not None:
            figures["preparation_s"] = prep
        return RunResult(
            seconds,
            daemon_phases(events, wall0, wall1),
            figures,
            peaks_kib={
                "dockd run (c)": daemon_hwm,
                "fusefat (c)": watch.peak_kib("fusefat"),
                "ffprobe (c)": watch.peak_kib("ffprobe"),
            },
        )
    finally:
        unmount_under(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def wait_daemon(
    proc: subprocess.Popen[bytes], status: StatusPoller, log_path: Path, timeout: float = 60
) -> int:
    """Wait until the daemon answers; its pid, which must be the one Popen started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: the daemon exited {proc.returncode}:\n{tail(log_path)}")
        answer = status()
        if answer is not None:
            pid = int(answer["daemon"]["pid"])
            if pid != proc.pid:
                raise SystemExit(
                    f"bench: the daemon reports pid {pid}, Popen started {proc.pid}: "
                    "umockdev-wrapper no longer execs it; read VmHWM of the right process"
                )
            return pid
        time.sleep(0.2)
    raise SystemExit(f"bench: the daemon did not answer within {timeout:g} s:\n{tail(log_path)}")


def wait_done(
    proc: subprocess.Popen[bytes],
    status: StatusPoller,
    camera: MockCamera,
    image: Image,
    log_path: Path,
) -> dict[str, Any]:
    deadline = time.monotonic() + run_timeout(image)
    while time.monotonic() < deadline:
        slot = slot_of(status(), camera)
        if slot is not None and slot["state"] in ("done", "error"):
            return slot
        if proc.poll() is not None:
            raise SystemExit(f"bench: the daemon exited {proc.returncode}:\n{tail(log_path)}")
        time.sleep(POLL)
    raise SystemExit(f"bench: slot {camera.slot} not done in time:\n{tail(log_path)}")


# -- running it all -----------------------------------------------------------------------------


@dataclass
class Samples:
    runs: list[RunResult] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    def median(self, values: Iterable[float | None]) -> float | None:
        found = [v for v in values if v is not None]
        return statistics.median(found) if found else None

    def phases(self) -> dict[str, float | None]:
        return {k: self.median(r.phases.get(k) for r in self.runs) for k in PHASES}

    def figures(self) -> dict[str, float | None]:
        return {k: self.median(r.figures.get(k) for r in self.runs) for k in FIGURES}

    def peaks_kib(self) -> dict[str, int]:
        names = dict.fromkeys(k for r in self.runs for k in r.peaks_kib)
        return {k: max(r.peaks_kib.get(k, 0) for r in self.runs) for k in names}


def missing_prerequisite() -> str | None:
    """Why this host cannot run the benchmark (as the tests would skip), or None."""
    if os.geteuid() != 0:
        return "needs root (loop devices, FUSE mounts, drop_caches)"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (modprobe fuse)"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"tools not installed: {', '.join(missing)} (make setup)"
    return umockdev_missing()


@contextlib.contextmanager
def work_dir(parent: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockd-dock-bench-", dir=parent))
    try:
        yield path
    finally:
        unmount_under(path)  # never delete through a mount left behind
        shutil.rmtree(path, ignore_errors=True)


def rate(size: int, seconds: float) -> float:
    return size / seconds / MB if seconds > 0 else float("inf")


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet: bool = args.json
    dockd = find_dockd(args.dockd)

    def log(message: str, end: str = "\n") -> None:
        if not quiet:
            print(message, end=end, flush=True, file=sys.stderr)

    with work_dir(args.dir) as work:
        free = shutil.disk_usage(work).free
        need = 3 * args.size + 2 * GiB
        if free < need:
            raise SystemExit(f"bench: {work} has {free / GiB:.1f} GiB free, needs {need / GiB:.1f}")
        log(f"building a {args.size / MiB:.0f} MiB FAT32 image of {args.files} files in {work} …")
        t0 = time.perf_counter()
        image = build_image(work, args.size, args.files, args.seed)
        log(f"  {image.image_bytes / MiB:.0f} MiB image in {time.perf_counter() - t0:.1f} s")

        log("timing (median of --repeat runs; caches dropped before each):")
        load_before = os.getloadavg()[0]
        cat_s, cli_s, daemon_s = Samples(), Samples(), Samples()
        methods: list[tuple[str, Callable[[], RunResult], Samples]] = [
            ("a) cat through fusefat", lambda: run_cat(image, work), cat_s),
            ("b) dockd ingest (CLI)", lambda: run_cli(dockd, image, work), cli_s),
            (
                "c) daemon, udev add -> done",
                lambda: run_daemon(dockd, image, work, args.poll_cli),
                daemon_s,
            ),
        ]
        for i in range(args.repeat):
            # Rotate the order so that no method always runs first (or last).
            k = i % len(methods)
            for label, method, samples in methods[k:] + methods[:k]:
                log(f"  {label} …", end="")
                result = method()
                samples.runs.append(result)
                log(f" {result.seconds:.2f} s")
        load_after = os.getloadavg()[0]

    total = image.total_bytes
    a, b, c = cat_s.seconds, cli_s.seconds, daemon_s.seconds
    n = len(image.files)

    def summary(samples: Samples) -> dict[str, Any]:
        return {
            "seconds": samples.seconds,
            "mb_per_s": rate(total, samples.seconds),
            "samples": [r.seconds for r in samples.runs],
            "phases": samples.phases(),
            "figures": samples.figures(),
        }

    peaks = {**cat_s.peaks_kib(), **cli_s.peaks_kib(), **daemon_s.peaks_kib()}
    return {
        "command": " ".join([sys.executable, *sys.argv]),
        "image": {
            "bytes": total,
            "files": n,
            "image_bytes": image.image_bytes,
            "cluster_bytes": image.cluster_bytes,
        },
        "cpus": os.cpu_count(),
        "load_average_1min": {"before": load_before, "after": load_after},
        "dockd_executable": str(dockd),
        "cache_drop": f"sync + echo 3 > {DROP_CACHES}",
        "status_poll": "dockd status --json (CLI)" if args.poll_cli else "status over the socket",
        "repeat": args.repeat,
        "cat": summary(cat_s),
        "cli": summary(cli_s),
        "daemon": summary(daemon_s),
        "ratios": {
            "daemon_over_cli": c / b,
            "daemon_over_cat": c / a,
            "cli_over_cat": b / a,
            "daemon_minus_cli_ms_per_file": (c - b) / n * 1e3,
            "daemon_minus_cat_ms_per_file": (c - a) / n * 1e3,
        },
        "peak_rss_mib": {k: v / 1024 for k, v in peaks.items()},
    }


def _cell(value: float | None, fmt: str = "9.2f") -> str:
    return f"{value:{fmt}}" if value is not None else f"{'-':>{fmt.split('.')[0]}}"


def print_table(res: dict[str, Any]) -> None:
    img, ratios = res["image"], res["ratios"]
    a, b, c = res["cat"], res["cli"], res["daemon"]
    print(
        f"image: FAT32, {img['image_bytes'] / MiB:.0f} MiB, {img['files']} files of random "
        f"bytes, {img['bytes'] / MiB:.0f} MiB in all, {img['cluster_bytes']} B clusters"
    )
    load = res["load_average_1min"]
    print(
        f"host: {res['cpus']} CPUs, load average (1 min) {load['before']:.2f} before the timed"
        f" runs, {load['after']:.2f} after"
    )
    print(f"dockd: {res['dockd_executable']}")
    print(f"cache drop before each run: {res['cache_drop']}")
    print(f"daemon status: {res['status_poll']}, every {POLL:g} s")
    print(f"median of {res['repeat']} run(s) each\n")

    print(f"{'method':<44} {'seconds':>9} {'MB/s':>9}  each run, s")
    rows = [
        ("a) cat of every file through fusefat", a),
        ("b) dockd ingest (CLI, one session)", b),
        ("c) daemon: udev add -> status done", c),
    ]
    for name, row in rows:
        each = " ".join(f"{v:.2f}" for v in row["samples"])
        print(f"{name:<44} {row['seconds']:>9.2f} {row['mb_per_s']:>9.1f}  {each}")

    print(f"\n{'ratio':<44} {'value':>9}")
    print(f"{'c / b  (daemon / CLI)':<44} {ratios['daemon_over_cli']:>9.3f}")
    print(f"{'c / a  (daemon / cat)':<44} {ratios['daemon_over_cat']:>9.3f}")
    print(f"{'b / a  (CLI / cat)':<44} {ratios['cli_over_cat']:>9.3f}")
    print(f"{'(c - b) / files, ms':<44} {ratios['daemon_minus_cli_ms_per_file']:>9.1f}")
    print(f"{'(c - a) / files, ms':<44} {ratios['daemon_minus_cat_ms_per_file']:>9.1f}")

    prep = c["figures"].get("preparation_s")
    print(f"\n{'daemon preparation, dock.detected -> session.start':<54} {_cell(prep, '7.2f')} s")
    print("(mount read-only, listing, health, queue, scan, session row)")

    print(f"\n{'phase (seconds, from the dockd logs)':<44} {'b) CLI':>9} {'c) daemon':>9}")
    for name in PHASES:
        bv, cv = b["phases"].get(name), c["phases"].get(name)
        if bv is None and cv is None:
            continue
        print(f"{name:<44} {_cell(bv)} {_cell(cv)}")
    bsum = sum(v for v in b["phases"].values() if v is not None)
    csum = sum(v for v in c["phases"].values() if v is not None)
    print(f"{'sum of the medians':<44} {bsum:>9.2f} {csum:>9.2f}")

    print(f"\n{'per run (median)':<44} {'a) cat':>9} {'b) CLI':>9} {'c) daemon':>9}")
    for key, name in FIGURES.items():
        if key == "preparation_s":
            continue
        values = [m["figures"].get(key) for m in (a, b, c)]
        fmt = "9.0f" if key.endswith("_mb") else "9.2f"
        print(f"{name:<44} {' '.join(_cell(v, fmt) for v in values)}")

    print(f"\n{'peak RSS (VmHWM), MiB, largest of the runs':<44} {'value':>9}")
    for name, mib in res["peak_rss_mib"].items():
        print(f"{name:<44} {mib:>9.1f}")
    print(
        "\nThe daemon's VmHWM is read just before SIGTERM; its fusefat and ffprobe"
        f"\nchildren, and the CLI, are polled every {HWM_POLL:g} s while they live; our own"
        "\nfusefat is read just before its unmount. Phases run from the previous"
        "\nevent found: b) from the CLI's launch, c) from add_camera. fusefat mount"
        "\nand unmount in a) and b) are outside their seconds; the daemon's are inside."
        "\nCPU: the daemon's share is its /proc/PID/stat growth over the session"
        "\n(its reaped children: fusefat, ffprobe, mount, fusermount); the CLI's and"
        "\nour fusefat's are read when they exit. MB read: fusefat's /proc/PID/io"
        f"\nrchar (the daemon's fusefat children polled every {HWM_POLL:g} s)."
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--size", type=parse_size, default=GiB, help="bytes of footage: 1G, 200M, … (default 1G)"
    )
    parser.add_argument("--files", type=int, default=20, help="files on the image (default 20)")
    parser.add_argument(
        "--dir", type=Path, default=Path("/var/tmp"), help="parent of the work dir (/var/tmp)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per method (median)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--poll-cli",
        action="store_true",
        help="ask the daemon's status with `dockd status --json` (a process per request)",
    )
    parser.add_argument(
        "--dockd", type=Path, default=None, help="dockd executable (default .venv/bin/dockd)"
    )
    parser.add_argument("--seed", type=int, default=947, help="seed for the random bytes")
    args = parser.parse_args(argv)
    if args.size < args.files or args.files < 1 or args.repeat < 1:
        parser.error("--files and --repeat must be positive, --size at least a byte per file")
    return args


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds every finally: mounts, loop devices, processes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reason = missing_prerequisite()
    if reason is not None:
        print(f"bench/dock.py: skipped: {reason}", file=sys.stderr)
        if args.json:
            print(json.dumps({"skipped": reason}))
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    res = run(args)
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
