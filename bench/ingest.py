"""Ingest benchmark: dockd against the naive and the bare way, on the same data.

Run as `make bench` (`.venv/bin/python bench/ingest.py`); `--help` lists the
options. This is a benchmark, not a test: it prints figures measured side by
side in one run, and marks each target met or not met. It exits non-zero only
when something is *wrong* (a method fails or two methods disagree on a hash),
never because a target was missed.

What it does, in one temporary work directory (deleted at the end):

1. Builds a camera-like volume of `--gib` GiB: a few large files (up to
   256 MiB), medium files (8-48 MiB, odd sizes) and a few real MP4 clips from
   `dockd.demo.make_clip`, named as a GA/T 947 camera names them. The random
   bytes come from a 32 MiB `os.urandom` pool read at random offsets, every
   1 MiB chunk stamped with a unique counter, so that no two files (or
   chunks) are equal and generation runs at disk speed, not at `os.urandom`
   speed. By default (`--payload mp4`) each file is a real 1 s MP4 followed by
   one ISO BMFF `free` box holding the random bytes, so ffprobe reads every
   file as a camera's footage and dockd's per-file probe costs what it costs
   in the field; `--payload raw` writes random bytes only (ffprobe then
   rejects every file and dockd flags it `unreadable_media`).
2. Before every timed run: `sync`, `posix_fadvise(DONTNEED)` on every source
   file, and `echo 3 > /proc/sys/vm/drop_caches` when that is writable, so
   each method reads the source from disk (the output says which was used);
   then the programs (python3 with av, ffprobe, sha256sum, cp, dockd) are run
   once, so that no method pays for loading its code from a cold disk.
3. Times, on that same volume:
   - `dockd ingest SOURCE --serial BENCH --keep-source --json` as a subprocess
     with a fresh state directory, and its peak RSS: `ru_maxrss` from
     `os.wait4` in a small launcher process (dockd and the ffprobes it ran)
     and dockd's own VmHWM polled from /proc;
   - diagnostics (`--no-diagnose` skips them): the same ingests with config
     `ingest.ffprobe` set to true(1) and no probe workers, i.e. dockd without
     any probe;
   - the naive way: `sha256sum` sources, `cp -r`, `sync`, `sha256sum` copies;
   - a bare single pass (the copy engine's algorithm in a few lines):
     read once in 1 MiB chunks, hash while writing, fsync, drop the copy's
     cache, read it back, hash, compare;
   and then the raw in-memory hashlib SHA-256 rate, and dockd's rate on many
   small files against one file of the same total size.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
CHUNK = MiB
MB = 1e6  # rates are printed in MB/s (10^6 bytes per second)
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/procfs.py, run as `python bench/ingest.py`

from bench import procfs  # noqa: E402

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
ZONE = "Asia/Shanghai"

TARGET_DOCKD_NAIVE = 0.30  # dockd time / naive time, at most
TARGET_DOCKD_BARE = 1.05  # dockd time / bare time, at most
TARGET_RSS_MIB = 64.0  # peak RSS of the dockd subprocess, at most
TARGET_SMALL_LARGE = 0.66  # many small files' rate / one large file's rate, at least


# -- the volume ------------------------------------------------------------------


@dataclass(frozen=True)
class Volume:
    root: Path
    files: tuple[Path, ...]  # absolute paths, sorted
    total_bytes: int
    largest: int
    clips: int

    @property
    def rel_files(self) -> list[str]:
        return [str(p.relative_to(self.root)) for p in self.files]


class ByteSource:
    """Unique, incompressible-looking bytes at disk speed (see the module doc)."""

    def __init__(self, seed: int, pool_size: int = 32 * MiB) -> None:
        self.pool = memoryview(os.urandom(pool_size + CHUNK))
        self.pool_size = pool_size
        self.rng = random.Random(seed)
        self.counter = 0

    def chunk(self, size: int) -> bytes:
        offset = self.rng.randrange(self.pool_size)
        self.counter += 1
        stamp = self.counter.to_bytes(16, "little")
        return (stamp + bytes(self.pool[offset : offset + size]))[:size]


def camera_name(seq: int, start: datetime, ext: str = "MP4") -> str:
    from dockd.demo import gat947_name

    return gat947_name("012345", "DSJ0001", start + timedelta(minutes=seq), seq, ZONE, ext)


def write_file(path: Path, size: int, source: ByteSource, header: bytes = b"") -> None:
    """`size` bytes: `header` (a real MP4) + one `free` box of random bytes, or all random."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        left = size
        if header and size >= len(header) + 16:
            box = size - len(header)
            # An ISO BMFF box players skip: 32-bit size, or size 1 + 64-bit largesize.
            if box <= 0xFFFFFFFF:
                head = header + struct.pack(">I4s", box, b"free")
            else:
                head = header + struct.pack(">I4sQ", 1, b"free", box)
            _write_all(fd, head)
            left -= len(head)
        while left:
            data = source.chunk(min(CHUNK, left))
            _write_all(fd, data)
            left -= len(data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def plan_sizes(total: int, rng: random.Random) -> list[int]:
    """About half the bytes in large files (<= 256 MiB), the rest in medium ones."""
    large = max(min(256 * MiB, total // 4), MiB)
    sizes: list[int] = []
    left = total
    while left > total // 2 and left >= large:
        sizes.append(large)
        left -= large
    while left > 0:
        size = min(left, rng.randrange(8 * MiB, 48 * MiB) + rng.randrange(MiB))
        if left - size < MiB:
            size = left  # no crumbs at the end
        sizes.append(size)
        left -= size
    rng.shuffle(sizes)
    return sizes


def mp4_header(work: Path, created: datetime) -> bytes:
    """A short real MP4 to put in front of random payloads; b"" without ffmpeg."""
    from dockd.demo import make_clip

    path = work / "header.mp4"
    try:
        make_clip(path, created, seconds=1.0)
    except Exception as exc:
        print(f"note: no MP4 container ({type(exc).__name__}: {exc})", file=sys.stderr)
        return b""
    header = path.read_bytes()
    path.unlink()
    return header


def build_volume(
    root: Path, sizes: Sequence[int], source: ByteSource, clips: int, header: bytes
) -> Volume:
    folder = root / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True)
    start = datetime.now(UTC) - timedelta(hours=6)
    made = 0
    if clips:
        from dockd.demo import make_clip

        for i in range(clips):
            try:
                make_clip(folder / camera_name(i + 1, start), start + timedelta(minutes=i + 1))
            except Exception as exc:  # no ffmpeg: go on without real clips
                print(f"note: no real MP4 clips ({type(exc).__name__}: {exc})", file=sys.stderr)
                break
            made += 1
    for i, size in enumerate(sizes):
        write_file(folder / camera_name(clips + i + 1, start), size, source, header)
    files = tuple(sorted(folder.iterdir()))
    lengths = [p.stat().st_size for p in files]
    return Volume(root, files, sum(lengths), max(lengths), made)


# -- page cache ---------------------------------------------------------------------


def drop_caches(paths: Iterable[Path]) -> str:
    """Flush dirty pages and evict `paths` (and, if allowed, the whole page cache)."""
    os.sync()
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    how = "sync + posix_fadvise(DONTNEED) per source file"
    try:
        DROP_CACHES.write_text("3\n")
    except OSError as exc:
        return f"{how} (drop_caches not writable: {exc.strerror})"
    warm_programs()
    return f"{how} + echo 3 > {DROP_CACHES}, then programs warmed"


# Run once after each cache drop, for every method alike: what is measured is the
# data coming from disk, not the programs. A dock runs dockd all day and its probe
# workers stay up; loading Python, dockd's modules and libav* from a cold disk is
# a once-per-boot cost (the CLI start-up row shows the warm one).
WARM = (
    ["/usr/bin/python3", "-I", "-c", "import av"],
    ["ffprobe", "-version"],
    ["sha256sum", "--version"],
    ["cp", "--version"],
)


def warm_programs() -> None:
    for argv in (*WARM, [str(find_dockd(None)), "--version"]):
        with contextlib.suppress(OSError):
            subprocess.run(argv, capture_output=True, check=False, timeout=120)


# -- measuring a subprocess ------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    seconds: float
    exit_code: int
    maxrss_kib: int  # ru_maxrss from wait4: the process and its waited-for children
    hwm_kib: int  # VmHWM of the process itself, polled from /proc
    stdout: str
    stderr: str
    child_rss_kib: int = 0  # the largest child seen (a probe worker, an ffprobe): Rss
    child_private_kib: int = 0  # and its anonymous part (heap, stacks: what it alone costs)


def _child_memory(pid: int) -> tuple[int, int]:
    """(Rss, Anonymous) of a process in KiB; (0, 0) if gone.

    The rest of Rss is file pages (libav*'s code), counted as "private" while no
    other process maps them, but shared with every ffprobe and reclaimable.
    """
    rss = anonymous = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "Rss":
                rss = int(value.split()[0])
            elif name == "Anonymous":
                anonymous = int(value.split()[0])
    return rss, anonymous


def _read_hwm(proc_fd: int) -> int:
    try:
        fd = os.open("status", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)
    except OSError:
        return 0
    try:
        text = os.read(fd, 1 << 16).decode("ascii", "replace")
    except OSError:
        return 0
    finally:
        os.close(fd)
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


# Started by a small Python (-S) instead of by this process: a child's
# ru_maxrss counts the memory of the process it was forked from (the kernel
# records the old address space's peak at exec), and this benchmark holds
# its 32 MiB byte pool; the launcher's own ~10 MiB is then the floor.
_LAUNCHER = """
import os, sys, time
fd, cmd = int(sys.argv[1]), sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
os.write(fd, b"%d\\n" % pid)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
os.write(fd, b"%d %d %.9f\\n" % (code, usage.ru_maxrss, seconds))
"""


def run_measured(cmd: Sequence[str], scratch: Path) -> Measured:
    """Run `cmd`; wall time, exit code and peak RSS (wait4 and polled VmHWM)."""
    out_path, err_path = scratch / "stdout", scratch / "stderr"
    read_end, write_end = os.pipe()
    launcher = [sys.executable, "-S", "-c", _LAUNCHER, str(write_end), *cmd]
    hwm = [0]
    child = [0, 0]
    done = threading.Event()
    with (
        out_path.open("wb") as out,
        err_path.open("wb") as err,
        os.fdopen(read_end, "rb") as results,
    ):
        proc = subprocess.Popen(
            launcher, stdin=subprocess.DEVNULL, stdout=out, stderr=err, pass_fds=(write_end,)
        )
        os.close(write_end)
        pid_line = results.readline()
        proc_fd = -1
        if pid_line:
            # A /proc/PID fd keeps naming this process even after the PID is reused.
            with contextlib.suppress(OSError):
                proc_fd = os.open(f"/proc/{int(pid_line)}", os.O_RDONLY | os.O_DIRECTORY)

        def poll() -> None:
            while proc_fd >= 0 and not done.wait(0.01):
                hwm[0] = max(hwm[0], _read_hwm(proc_fd))
                for pid in procfs.children(f"/proc/self/fd/{proc_fd}"):
                    rss, private = _child_memory(pid)
                    if rss > child[0]:
                        child[:] = [rss, private]

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        last = results.readline().split()
        proc.wait()
        done.set()
        poller.join()
        if proc_fd >= 0:
            os.close(proc_fd)
    if proc.returncode != 0 or len(last) != 3:
        raise SystemExit(f"bench: the launcher of {cmd[0]} failed ({proc.returncode})")
    return Measured(
        float(last[2]),
        int(last[0]),
        int(last[1]),
        hwm[0],
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
        child[0],
        child[1],
    )


# -- the three methods ----------------------------------------------------------------------


@dataclass
class RunResult:
    seconds: float
    hashes: dict[str, str]  # path relative to the volume root -> sha256
    phases: dict[str, float] = field(default_factory=dict)
    maxrss_kib: int = 0
    hwm_kib: int = 0
    child_rss_kib: int = 0
    child_private_kib: int = 0


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


# More [ingest] settings for every dockd run (`--ffprobe-each`: no probe workers).
INGEST_EXTRA = ""


def run_dockd(dockd: Path, volume: Volume, work: Path, ffprobe: str | None = None) -> RunResult:
    """One `dockd ingest` of `volume` into a fresh state directory.

    `ffprobe` replaces the ffprobe executable (config `ingest.ffprobe`): the
    diagnostic runs pass true(1), which costs a fork and an exec and nothing
    else, to show what dockd costs without its per-file ffprobe.
    """
    state = Path(tempfile.mkdtemp(prefix="state-", dir=work))
    config = work / "dockd.toml"
    text = "[ingest]\nchange_retry_delay = 0\n" + INGEST_EXTRA
    if ffprobe is not None:
        text += f'ffprobe = {json.dumps(ffprobe)}\nprobe_python = ""\n'
    config.write_text(text)
    cmd = [
        str(dockd),
        "--config",
        str(config),
        "--state-dir",
        str(state),
        "ingest",
        str(volume.root),
        "--serial",
        "BENCH",
        "--keep-source",
        "--json",
    ]
    try:
        m = run_measured(cmd, work)
        # 3 = ingested but flagged: with `--payload raw` or a stubbed ffprobe every
        # file is "unreadable_media".
        if m.exit_code not in (0, 3):
            raise SystemExit(f"bench: dockd ingest exited {m.exit_code}:\n{m.stderr[-4000:]}")
        report = json.loads(m.stdout)
        counts = report["counts"]
        if counts["ingested"] != len(volume.files) or counts["failed"]:
            raise SystemExit(f"bench: dockd ingest did not ingest every file: {counts}")
        hashes = {r["source_path"]: r["sha256"] for r in report["recordings"]}
    finally:
        shutil.rmtree(state)
    return RunResult(
        m.seconds,
        hashes,
        maxrss_kib=m.maxrss_kib,
        hwm_kib=m.hwm_kib,
        child_rss_kib=m.child_rss_kib,
        child_private_kib=m.child_private_kib,
    )


def _sha256sum(paths: Sequence[str], cwd: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for i in range(0, len(paths), 500):
        out = subprocess.run(
            ["sha256sum", "--", *paths[i : i + 500]],
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for line in out.splitlines():
            digest, name = line.split(maxsplit=1)
            hashes[name.lstrip("*")] = digest
    return hashes


def run_naive(volume: Volume, work: Path) -> RunResult:
    dest = work / "naive-copy"
    rel = volume.rel_files
    phases: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        before = _sha256sum(rel, volume.root)
        t1 = time.perf_counter()
        subprocess.run(["cp", "-r", "--", f"{volume.root}/.", str(dest)], check=True)
        t2 = time.perf_counter()
        subprocess.run(["sync"], check=True)
        t3 = time.perf_counter()
        after = _sha256sum(rel, dest)
        t4 = time.perf_counter()
        if before != after:
            raise SystemExit("bench: naive copy: hashes of the copies differ from the sources")
        phases = {
            "sha256sum sources": t1 - t0,
            "cp": t2 - t1,
            "sync": t3 - t2,
            "sha256sum copies": t4 - t3,
        }
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return RunResult(t4 - t0, before, phases)


def bare_copy(src: Path, dst: Path, buf: bytearray) -> str:
    """Read once, hash while writing, fsync, drop the cache, read back, compare."""
    view, written = memoryview(buf), hashlib.sha256()
    fin = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        while n := os.readv(fin, [buf]):
            written.update(view[:n])
            rest = view[:n]
            while rest:
                rest = rest[os.write(fout, rest) :]
        os.fsync(fout)
        os.posix_fadvise(fout, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fin)
        os.close(fout)
    read_back = hashlib.sha256()
    fd = os.open(dst, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while n := os.readv(fd, [buf]):
            read_back.update(view[:n])
    finally:
        os.close(fd)
    if read_back.digest() != written.digest():
        raise SystemExit(f"bench: bare copy of {src}: read-back hash differs")
    return written.hexdigest()


def run_bare(volume: Volume, work: Path) -> RunResult:
    dest = Path(tempfile.mkdtemp(prefix="bare-", dir=work))
    buf = bytearray(CHUNK)
    try:
        start = time.perf_counter()
        hashes = {
            rel: bare_copy(src, dest / f"{i}.part", buf)
            for i, (rel, src) in enumerate(zip(volume.rel_files, volume.files, strict=True))
        }
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(dest)
    return RunResult(seconds, hashes)


def hashlib_rate(total: int = 512 * MiB) -> float:
    data = os.urandom(CHUNK)
    digest = hashlib.sha256()
    start = time.perf_counter()
    for _ in range(total // CHUNK):
        digest.update(data)
    return total / (time.perf_counter() - start)


def dockd_startup(dockd: Path, work: Path) -> float:
    return min(run_measured([str(dockd), "--version"], work).seconds for _ in range(3))


# -- running it all ------------------------------------------------------------------------------


@dataclass
class Samples:
    runs: list[RunResult] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    @property
    def maxrss_kib(self) -> int:
        return max(r.maxrss_kib for r in self.runs)

    @property
    def hwm_kib(self) -> int:
        return max(r.hwm_kib for r in self.runs)

    @property
    def child(self) -> tuple[int, int]:
        return max((r.child_rss_kib, r.child_private_kib) for r in self.runs)

    def phases(self) -> dict[str, float]:
        names = self.runs[0].phases
        return {k: statistics.median(r.phases[k] for r in self.runs) for k in names}


def timed(
    label: str, method: Callable[[], RunResult], volume: Volume, samples: Samples, quiet: bool
) -> str:
    how = drop_caches(volume.files)
    if not quiet:
        print(f"  {label} …", end="", flush=True, file=sys.stderr)
    result = method()
    samples.runs.append(result)
    os.sync()  # the next method must not pay for this one's writeback
    if not quiet:
        print(f" {result.seconds:.2f} s", file=sys.stderr)
    return how


def check_same(reference: dict[str, str], other: dict[str, str], what: str) -> None:
    if reference != other:
        bad = sorted(k for k in reference.keys() | other.keys() if reference.get(k) != other.get(k))
        raise SystemExit(f"bench: {what} disagree on {len(bad)} file(s), e.g. {bad[:3]}")


@contextlib.contextmanager
def work_dir(parent: Path | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockd-bench-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def rate(size: int, seconds: float) -> float:
    return size / seconds / MB if seconds > 0 else float("inf")


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def run(args: argparse.Namespace) -> dict[str, Any]:
    quiet: bool = args.json
    dockd = find_dockd(args.dockd)
    total = int(args.gib * GiB)
    small_count = args.small_files or max(50, round(1000 * args.gib / 2))
    small_size = args.small_kib * 1024
    rng = random.Random(args.seed)
    with work_dir(args.dir) as work:
        free = shutil.disk_usage(work).free
        need = 3 * total + 3 * small_count * small_size + GiB
        if free < need:
            raise SystemExit(f"bench: {work} has {free / GiB:.1f} GiB free, needs {need / GiB:.1f}")

        def log(message: str) -> None:
            if not quiet:
                print(message, file=sys.stderr)

        log(f"building a {args.gib:g} GiB volume in {work} …")
        source = ByteSource(args.seed)
        t0 = time.perf_counter()
        header = b"" if args.payload == "raw" else mp4_header(work, datetime.now(UTC))
        sizes = plan_sizes(total, rng)
        volume = build_volume(work / "volume", sizes, source, args.clips, header)
        small = build_volume(work / "small", [small_size] * small_count, source, 0, header)
        large = build_volume(work / "large", [small_size * small_count], source, 0, header)
        log(
            f"  {len(volume.files)} files, {volume.total_bytes / MiB:.0f} MiB "
            f"({volume.clips} real MP4 clips) + {small_count} x {args.small_kib} KiB "
            f"+ 1 x {large.total_bytes / MiB:.1f} MiB in {time.perf_counter() - t0:.1f} s"
        )

        log("timing (median of --repeat runs; caches dropped before each):")
        true = shutil.which("true") or "/bin/true"
        dockd_s, stub_s, naive_s, bare_s = Samples(), Samples(), Samples(), Samples()
        methods: list[tuple[str, Callable[[], RunResult], Volume, Samples]] = [
            ("dockd ingest", lambda: run_dockd(dockd, volume, work), volume, dockd_s),
            ("naive sha256sum+cp+sync+sha256sum", lambda: run_naive(volume, work), volume, naive_s),
            ("bare single pass", lambda: run_bare(volume, work), volume, bare_s),
        ]
        small_s, large_s, bare_small_s, bare_large_s = Samples(), Samples(), Samples(), Samples()
        stub_small_s, stub_large_s = Samples(), Samples()
        pairs: list[tuple[str, Callable[[], RunResult], Volume, Samples]] = [
            (f"dockd {small_count} small", lambda: run_dockd(dockd, small, work), small, small_s),
            ("dockd 1 large", lambda: run_dockd(dockd, large, work), large, large_s),
            (f"bare {small_count} small", lambda: run_bare(small, work), small, bare_small_s),
            ("bare 1 large", lambda: run_bare(large, work), large, bare_large_s),
        ]
        if args.diagnose:
            methods.append(
                (
                    "dockd, ffprobe = true",
                    lambda: run_dockd(dockd, volume, work, true),
                    volume,
                    stub_s,
                )
            )
            pairs += [
                (
                    f"dockd {small_count} small, ffprobe = true",
                    lambda: run_dockd(dockd, small, work, true),
                    small,
                    stub_small_s,
                ),
                (
                    "dockd 1 large, ffprobe = true",
                    lambda: run_dockd(dockd, large, work, true),
                    large,
                    stub_large_s,
                ),
            ]
        how = ""
        for i in range(args.repeat):
            # Rotate the order so that no method always runs first (or last).
            k = i % len(methods)
            for label, method, vol, samples in methods[k:] + methods[:k]:
                how = timed(label, method, vol, samples, quiet)
        for _ in range(args.repeat):
            for label, method, vol, samples in pairs:
                timed(label, method, vol, samples, quiet)
        # Every method must have produced the same SHA-256 for every file.
        checks = [(dockd_s, naive_s, bare_s, stub_s), (small_s, bare_small_s, stub_small_s)]
        checks.append((large_s, bare_large_s, stub_large_s))
        for group in checks:
            reference = group[0].runs[0].hashes
            for samples in group:
                for r in samples.runs:
                    check_same(reference, r.hashes, "dockd and another method")
        log("  hashlib in memory …")
        sha_rate = hashlib_rate()
        startup = dockd_startup(dockd, work)

    vol_bytes = volume.total_bytes
    small_bytes = small.total_bytes
    dockd_runs = (dockd_s, small_s, large_s)
    rss_mib = max(s.maxrss_kib for s in dockd_runs) / 1024
    own_mib = max(s.hwm_kib for s in dockd_runs) / 1024
    child_rss, child_private = max(s.child for s in dockd_runs)
    r_naive = dockd_s.seconds / naive_s.seconds
    r_bare = dockd_s.seconds / bare_s.seconds

    def small_large(small_run: Samples, large_run: Samples) -> dict[str, float]:
        small_rate = rate(small_bytes, small_run.seconds)
        large_rate = rate(small_bytes, large_run.seconds)
        return {
            "small_seconds": small_run.seconds,
            "large_seconds": large_run.seconds,
            "small_mb_per_s": small_rate,
            "large_mb_per_s": large_rate,
            "small_over_large_rate": small_rate / large_rate,
            "overhead_ms_per_file": (small_run.seconds - large_run.seconds) / small_count * 1e3,
        }

    def summary(samples: Samples) -> dict[str, Any]:
        return {
            "seconds": samples.seconds,
            "mb_per_s": rate(vol_bytes, samples.seconds),
            "samples": [r.seconds for r in samples.runs],
        }

    sl_dockd = small_large(small_s, large_s)
    return {
        "command": " ".join([sys.executable, *sys.argv]),
        "volume": {
            "bytes": vol_bytes,
            "files": len(volume.files),
            "real_mp4_clips": volume.clips,
            "largest_file_bytes": volume.largest,
        },
        "payload": "mp4" if header else "raw",
        "dockd_executable": str(dockd),
        "cache_drop": how,
        "repeat": args.repeat,
        "dockd": {**summary(dockd_s), "startup_seconds": startup},
        "naive": {**summary(naive_s), "phases": naive_s.phases()},
        "bare": summary(bare_s),
        "diagnostic_dockd_ffprobe_true": summary(stub_s) if stub_s.runs else None,
        "hashlib_sha256_mb_per_s": sha_rate / MB,
        "small_vs_large": {
            "small_files": small_count,
            "small_file_bytes": small_size,
            "total_bytes": small_bytes,
            "dockd": sl_dockd,
            "bare": small_large(bare_small_s, bare_large_s),
            "diagnostic_dockd_ffprobe_true": small_large(stub_small_s, stub_large_s)
            if stub_small_s.runs
            else None,
        },
        "peak_rss_mib": {
            "wait4_ru_maxrss": rss_mib,
            "dockd_process_vmhwm": own_mib,
            "largest_child_rss": child_rss / 1024,
            "largest_child_anonymous": child_private / 1024,
        },
        "ratios": {
            "dockd_over_naive": r_naive,
            "dockd_over_bare": r_bare,
            "small_over_large_rate": sl_dockd["small_over_large_rate"],
        },
        "targets": {
            "dockd_over_naive": {"max": TARGET_DOCKD_NAIVE, "met": r_naive <= TARGET_DOCKD_NAIVE},
            "dockd_over_bare": {"max": TARGET_DOCKD_BARE, "met": r_bare <= TARGET_DOCKD_BARE},
            "peak_rss_mib": {"max": TARGET_RSS_MIB, "met": rss_mib <= TARGET_RSS_MIB},
            "small_over_large_rate": {
                "min": TARGET_SMALL_LARGE,
                "met": sl_dockd["small_over_large_rate"] >= TARGET_SMALL_LARGE,
            },
        },
    }


def print_table(res: dict[str, Any]) -> None:
    vol, sl = res["volume"], res["small_vs_large"]
    d, n, b, stub = res["dockd"], res["naive"], res["bare"], res["diagnostic_dockd_ffprobe_true"]
    ratios, targets, rss = res["ratios"], res["targets"], res["peak_rss_mib"]
    payload = {
        "mp4": "random bytes in a `free` box behind a real 1 s MP4",
        "raw": "random bytes only (every file flagged unreadable_media)",
    }[res["payload"]]
    print(
        f"volume: {vol['files']} files, {vol['bytes'] / MiB:.0f} MiB "
        f"(largest {vol['largest_file_bytes'] / MiB:.0f} MiB, {vol['real_mp4_clips']} real MP4s)"
    )
    print(f"payload: {payload}")
    each = res.get("ffprobe_each")
    print(f"probe: {'one ffprobe per file (--ffprobe-each)' if each else 'workers (default)'}")
    print(f"dockd: {res['dockd_executable']}")
    print(f"cache drop before each run: {res['cache_drop']}")
    print(f"median of {res['repeat']} run(s) each\n")
    rows = [("dockd ingest (subprocess)", d["seconds"], d["mb_per_s"])]
    if stub:
        rows.append(("  diagnostic: same, ffprobe = true(1)", stub["seconds"], stub["mb_per_s"]))
    rows.append(("naive: sha256sum, cp, sync, sha256sum", n["seconds"], n["mb_per_s"]))
    rows += [(f"  {k}", v, vol["bytes"] / v / MB) for k, v in n["phases"].items()]
    rows.append(("bare single pass (python, 1 MiB)", b["seconds"], b["mb_per_s"]))
    print(f"{'method':<40} {'seconds':>9} {'MB/s':>9}")
    for name, seconds, mbps in rows:
        print(f"{name:<40} {seconds:>9.2f} {mbps:>9.0f}")
    print(f"{'hashlib SHA-256 in memory':<40} {'':>9} {res['hashlib_sha256_mb_per_s']:>9.0f}")
    print(f"{'dockd CLI start-up (dockd --version)':<40} {d['startup_seconds']:>9.2f}")

    print(
        f"\nsmall vs large: {sl['small_files']} x {sl['small_file_bytes'] // 1024} KiB "
        f"vs 1 x {sl['total_bytes'] / MiB:.1f} MiB"
    )
    print(f"{'MB/s':<40} {'small':>9} {'large':>9} {'ratio':>9} {'ms/file':>9}")
    kinds = [
        ("dockd", sl["dockd"]),
        ("  diagnostic: ffprobe = true(1)", sl["diagnostic_dockd_ffprobe_true"]),
        ("bare", sl["bare"]),
    ]
    for name, row in kinds:
        if row:
            print(
                f"{name:<40} {row['small_mb_per_s']:>9.1f} {row['large_mb_per_s']:>9.1f} "
                f"{row['small_over_large_rate']:>9.3f} {row['overhead_ms_per_file']:>9.1f}"
            )
    print("(ms/file: extra time per small file over the one large file)")

    print(f"\n{'figure':<40} {'value':>9} {'target':>9}  verdict")
    print(
        f"{'dockd / naive (time)':<40} {ratios['dockd_over_naive']:>9.3f} "
        f"{'<= ' + str(TARGET_DOCKD_NAIVE):>9}  {verdict(targets['dockd_over_naive']['met'])}"
    )
    print(
        f"{'dockd / bare (time)':<40} {ratios['dockd_over_bare']:>9.3f} "
        f"{'<= ' + str(TARGET_DOCKD_BARE):>9}  {verdict(targets['dockd_over_bare']['met'])}"
    )
    print(
        f"{'small / large (dockd rate)':<40} {ratios['small_over_large_rate']:>9.3f} "
        f"{'>= ' + str(TARGET_SMALL_LARGE):>9}  {verdict(targets['small_over_large_rate']['met'])}"
    )
    print(
        f"{'peak RSS, MiB (wait4 ru_maxrss)':<40} {rss['wait4_ru_maxrss']:>9.1f} "
        f"{'<= ' + str(int(TARGET_RSS_MIB)):>9}  {verdict(targets['peak_rss_mib']['met'])}"
    )
    print(f"{'  the dockd process (VmHWM)':<40} {rss['dockd_process_vmhwm']:>9.1f}")
    print(f"{'  largest child (probe worker): Rss':<40} {rss['largest_child_rss']:>9.1f}")
    print(f"{'    of it anonymous (heap, not code)':<40} {rss['largest_child_anonymous']:>9.1f}")
    print(
        "\nru_maxrss (wait4 in a small launcher, floor ~7 MiB) is the largest of the dockd"
        "\nprocess and the children it waited for (probe workers, ffprobes); VmHWM is"
        "\ndockd's own peak; a child's Rss and anonymous part come from smaps_rollup; all"
        "\npolled every 10 ms. The rest of a child's Rss is libav*'s code (file pages, as"
        "\nin every ffprobe)."
    )
    if stub:
        print(
            "The ffprobe = true(1) rows are diagnostics (config ingest.ffprobe replaced by"
            "\ntrue, no probe workers): what dockd costs without any probe. By default the"
            "\nprobe runs in long-lived workers (dockd/ingest/prober.py) beside the copy of"
            "\nthe next file; --ffprobe-each measures the old way, one ffprobe per file."
        )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--gib", type=float, default=2.0, help="volume size in GiB (default 2)")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the work directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per method (median)")
    parser.add_argument("--clips", type=int, default=3, help="real MP4 clips in the volume")
    parser.add_argument(
        "--small-files",
        type=int,
        default=0,
        help="files in the small-file set (default 1000 per 2 GiB, at least 50)",
    )
    parser.add_argument("--small-kib", type=int, default=256, help="size of each small file")
    parser.add_argument(
        "--payload",
        choices=("mp4", "raw"),
        default="mp4",
        help="mp4: random bytes in a `free` box after a real 1 s MP4 (ffprobe reads it);"
        " raw: random bytes only (ffprobe fails, dockd flags every file)",
    )
    parser.add_argument(
        "--dockd", type=Path, default=None, help="dockd executable (default .venv/bin/dockd)"
    )
    parser.add_argument(
        "--no-diagnose",
        dest="diagnose",
        action="store_false",
        help="skip the diagnostic dockd runs with ffprobe replaced by true(1)",
    )
    parser.add_argument("--seed", type=int, default=947, help="seed for sizes and bytes")
    parser.add_argument(
        "--ffprobe-each",
        action="store_true",
        help='run dockd with ingest.probe_python = "" (one ffprobe per file, no workers)',
    )
    args = parser.parse_args(argv)
    if args.gib <= 0 or args.repeat < 1 or args.clips < 0 or args.small_kib < 1:
        parser.error("--gib, --repeat and --small-kib must be positive, --clips not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    global INGEST_EXTRA
    INGEST_EXTRA = 'probe_python = ""\n' if args.ffprobe_each else ""
    res = run(args)
    res["ffprobe_each"] = args.ffprobe_each
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
