"""Ingest benchmark: dockd against the naive and the bare way, on the same data.

Run as `make bench` (`.venv/bin/python bench/ingest.py`); `--help` lists the
options. This is a benchmark, not a test: it prints figures measured side by
side in one run, and marks each target met or not met. It exits non-zero only
when something is *wrong* (a method fails or two methods disagree on a hash),
never because a target was missed.

What it does, in one temporary work directory (deleted at the end):

1. Builds a camera-like volume of `--gib` GiB: a few large files (up to
   256 MiB), medium files (8-48 MiB, odd sizes) and a few real MP4 clips from
   `dockd.demo.make_clip`, named as a GA/T 947 camera names them. The bytes
   come from a 32 MiB `os.urandom` pool read at random offsets, every 1 MiB
   chunk stamped with a unique counter, so that no two files (or chunks) are
   equal and generation runs at disk speed, not at `os.urandom` speed.
2. Before every timed run: `sync`, `posix_fadvise(DONTNEED)` on every source
   file, and `echo 3 > /proc/sys/vm/drop_caches` when that is writable, so
   each method reads the source from disk (the output says which was used).
3. Times, on that same volume:
   - `dockd ingest SOURCE --serial BENCH --keep-source --json` as a subprocess
     with a fresh state directory, and its peak RSS via `os.wait4`;
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
DROP_CACHES = Path("/proc/sys/vm/drop_caches")
ZONE = "Asia/Shanghai"

TARGET_DOCKD_NAIVE = 0.35  # dockd time / naive time, at most
TARGET_DOCKD_BARE = 1.3  # dockd time / bare time, at most
TARGET_RSS_MIB = 64.0  # peak RSS of the dockd subprocess, at most


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


def write_random_file(path: Path, size: int, source: ByteSource) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        left = size
        while left:
            data = source.chunk(min(CHUNK, left))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            left -= len(data)
        os.fsync(fd)
    finally:
        os.close(fd)


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


def build_volume(root: Path, sizes: Sequence[int], source: ByteSource, clips: int) -> Volume:
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
        write_random_file(folder / camera_name(clips + i + 1, start), size, source)
    files = tuple(sorted(folder.iterdir()))
    sizes = [p.stat().st_size for p in files]
    return Volume(root, files, sum(sizes), max(sizes), made)


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
    return f"{how} + echo 3 > {DROP_CACHES}"


# -- measuring a subprocess ------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    seconds: float
    exit_code: int
    maxrss_kib: int  # ru_maxrss from wait4: the process and its waited-for children
    hwm_kib: int  # VmHWM of the process itself, polled from /proc
    stdout: str
    stderr: str


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


def run_measured(cmd: Sequence[str], scratch: Path) -> Measured:
    """Run `cmd`; wall time, exit code and peak RSS (wait4 and polled VmHWM)."""
    out_path, err_path = scratch / "stdout", scratch / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        # A /proc/PID fd keeps naming this process even after the PID is reused.
        proc_fd = os.open(f"/proc/{proc.pid}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        hwm = [0]
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.01):
                hwm[0] = max(hwm[0], _read_hwm(proc_fd))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        poller.join()
        os.close(proc_fd)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        seconds,
        proc.returncode,
        usage.ru_maxrss,
        hwm[0],
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
    )


# -- the three methods ----------------------------------------------------------------------


@dataclass
class RunResult:
    seconds: float
    hashes: dict[str, str]  # path relative to the volume root -> sha256
    phases: dict[str, float] = field(default_factory=dict)
    maxrss_kib: int = 0
    hwm_kib: int = 0


def find_dockd() -> Path:
    for candidate in (ROOT / ".venv" / "bin" / "dockd", Path(sys.executable).parent / "dockd"):
        if candidate.exists():
            return candidate
    found = shutil.which("dockd")
    if found is None:
        raise SystemExit("bench: cannot find the dockd executable (run `make setup`)")
    return Path(found)


def run_dockd(dockd: Path, volume: Volume, work: Path) -> RunResult:
    state = Path(tempfile.mkdtemp(prefix="state-", dir=work))
    config = work / "dockd.toml"
    config.write_text("[ingest]\nchange_retry_delay = 0\n")
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
        # 3 = ingested but flagged: the random-byte ".MP4" files are unreadable media.
        if m.exit_code not in (0, 3):
            raise SystemExit(f"bench: dockd ingest exited {m.exit_code}:\n{m.stderr[-4000:]}")
        report = json.loads(m.stdout)
        counts = report["counts"]
        if counts["ingested"] != len(volume.files) or counts["failed"]:
            raise SystemExit(f"bench: dockd ingest did not ingest every file: {counts}")
        hashes = {r["source_path"]: r["sha256"] for r in report["recordings"]}
    finally:
        shutil.rmtree(state)
    return RunResult(m.seconds, hashes, maxrss_kib=m.maxrss_kib, hwm_kib=m.hwm_kib)


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
    dockd = find_dockd()
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
        volume = build_volume(work / "volume", plan_sizes(total, rng), source, args.clips)
        small = build_volume(work / "small", [small_size] * small_count, source, 0)
        large = build_volume(work / "large", [small_size * small_count], source, 0)
        log(
            f"  {len(volume.files)} files, {volume.total_bytes / MiB:.0f} MiB "
            f"({volume.clips} real MP4 clips) + {small_count} x {args.small_kib} KiB "
            f"+ 1 x {large.total_bytes / MiB:.1f} MiB in {time.perf_counter() - t0:.1f} s"
        )

        log("timing (median of --repeat runs; caches dropped before each):")
        dockd_s, naive_s, bare_s = Samples(), Samples(), Samples()
        methods: list[tuple[str, Callable[[], RunResult], Samples]] = [
            ("dockd ingest", lambda: run_dockd(dockd, volume, work), dockd_s),
            ("naive sha256sum+cp+sync+sha256sum", lambda: run_naive(volume, work), naive_s),
            ("bare single pass", lambda: run_bare(volume, work), bare_s),
        ]
        how = ""
        for i in range(args.repeat):
            # Rotate the order so that no method always runs first (or last).
            for label, method, samples in methods[i % 3 :] + methods[: i % 3]:
                how = timed(label, method, volume, samples, quiet)
        for label, samples in (("naive", naive_s), ("bare", bare_s)):
            for r in samples.runs + dockd_s.runs[1:]:
                check_same(dockd_s.runs[0].hashes, r.hashes, f"dockd and {label}")

        small_s, large_s, bare_small_s, bare_large_s = Samples(), Samples(), Samples(), Samples()
        pairs: list[tuple[str, Callable[[], RunResult], Volume, Samples]] = [
            (f"dockd {small_count} small", lambda: run_dockd(dockd, small, work), small, small_s),
            ("dockd 1 large", lambda: run_dockd(dockd, large, work), large, large_s),
            (f"bare {small_count} small", lambda: run_bare(small, work), small, bare_small_s),
            ("bare 1 large", lambda: run_bare(large, work), large, bare_large_s),
        ]
        for _ in range(args.repeat):
            for label, method, vol, samples in pairs:
                timed(label, method, vol, samples, quiet)
        log("  hashlib in memory …")
        sha_rate = hashlib_rate()
        startup = dockd_startup(dockd, work)

    vol_bytes = volume.total_bytes
    small_bytes = small.total_bytes
    rss_mib = max(dockd_s.maxrss_kib, small_s.maxrss_kib, large_s.maxrss_kib) / 1024
    own_mib = max(dockd_s.hwm_kib, small_s.hwm_kib, large_s.hwm_kib) / 1024
    r_naive = dockd_s.seconds / naive_s.seconds
    r_bare = dockd_s.seconds / bare_s.seconds
    small_rate = rate(small_bytes, small_s.seconds)
    large_rate = rate(small_bytes, large_s.seconds)
    bare_small_rate = rate(small_bytes, bare_small_s.seconds)
    bare_large_rate = rate(small_bytes, bare_large_s.seconds)
    return {
        "command": " ".join([sys.executable, *sys.argv]),
        "volume": {
            "bytes": vol_bytes,
            "files": len(volume.files),
            "real_mp4_clips": volume.clips,
            "largest_file_bytes": volume.largest,
        },
        "cache_drop": how,
        "repeat": args.repeat,
        "dockd": {
            "seconds": dockd_s.seconds,
            "mb_per_s": rate(vol_bytes, dockd_s.seconds),
            "samples": [r.seconds for r in dockd_s.runs],
            "startup_seconds": startup,
        },
        "naive": {
            "seconds": naive_s.seconds,
            "mb_per_s": rate(vol_bytes, naive_s.seconds),
            "samples": [r.seconds for r in naive_s.runs],
            "phases": naive_s.phases(),
        },
        "bare": {
            "seconds": bare_s.seconds,
            "mb_per_s": rate(vol_bytes, bare_s.seconds),
            "samples": [r.seconds for r in bare_s.runs],
        },
        "hashlib_sha256_mb_per_s": sha_rate / MB,
        "small_vs_large": {
            "small_files": small_count,
            "small_file_bytes": small_size,
            "total_bytes": small_bytes,
            "dockd_small_seconds": small_s.seconds,
            "dockd_large_seconds": large_s.seconds,
            "dockd_small_mb_per_s": small_rate,
            "dockd_large_mb_per_s": large_rate,
            "dockd_small_over_large_rate": small_rate / large_rate,
            "dockd_overhead_ms_per_file": (small_s.seconds - large_s.seconds) / small_count * 1e3,
            "bare_small_mb_per_s": bare_small_rate,
            "bare_large_mb_per_s": bare_large_rate,
            "bare_small_over_large_rate": bare_small_rate / bare_large_rate,
        },
        "peak_rss_mib": {
            "wait4_ru_maxrss": rss_mib,
            "dockd_process_vmhwm": own_mib,
        },
        "ratios": {
            "dockd_over_naive": r_naive,
            "dockd_over_bare": r_bare,
            "small_over_large_rate": small_rate / large_rate,
        },
        "targets": {
            "dockd_over_naive": {"max": TARGET_DOCKD_NAIVE, "met": r_naive <= TARGET_DOCKD_NAIVE},
            "dockd_over_bare": {"max": TARGET_DOCKD_BARE, "met": r_bare <= TARGET_DOCKD_BARE},
            "peak_rss_mib": {"max": TARGET_RSS_MIB, "met": rss_mib <= TARGET_RSS_MIB},
        },
    }


def print_table(res: dict[str, Any]) -> None:
    vol, sl = res["volume"], res["small_vs_large"]
    d, n, b = res["dockd"], res["naive"], res["bare"]
    ratios, targets, rss = res["ratios"], res["targets"], res["peak_rss_mib"]
    print(
        f"volume: {vol['files']} files, {vol['bytes'] / MiB:.0f} MiB "
        f"(largest {vol['largest_file_bytes'] / MiB:.0f} MiB, {vol['real_mp4_clips']} real MP4s)"
    )
    print(f"cache drop before each run: {res['cache_drop']}")
    print(f"median of {res['repeat']} run(s) each\n")
    rows = [
        ("dockd ingest (subprocess)", d["seconds"], d["mb_per_s"]),
        ("naive: sha256sum, cp, sync, sha256sum", n["seconds"], n["mb_per_s"]),
        *((f"    {k}", v, vol["bytes"] / v / MB) for k, v in n["phases"].items()),
        ("bare single pass (python, 1 MiB)", b["seconds"], b["mb_per_s"]),
    ]
    print(f"{'method':<40} {'seconds':>9} {'MB/s':>9}")
    for name, seconds, mbps in rows:
        print(f"{name:<40} {seconds:>9.2f} {mbps:>9.0f}")
    print(f"{'hashlib SHA-256 in memory':<40} {'':>9} {res['hashlib_sha256_mb_per_s']:>9.0f}")
    print(f"{'dockd CLI start-up (dockd --version)':<40} {d['startup_seconds']:>9.2f}")

    total = sl["total_bytes"] / MiB
    print(f"\nsmall vs large, {total:.1f} MiB each way:")
    print(f"{'':<40} {'small':>9} {'large':>9} {'ratio':>9}")
    print(
        f"{'dockd MB/s (' + str(sl['small_files']) + ' files vs 1)':<40} "
        f"{sl['dockd_small_mb_per_s']:>9.1f} {sl['dockd_large_mb_per_s']:>9.1f} "
        f"{sl['dockd_small_over_large_rate']:>9.3f}"
    )
    print(
        f"{'bare MB/s (same files)':<40} {sl['bare_small_mb_per_s']:>9.1f} "
        f"{sl['bare_large_mb_per_s']:>9.1f} {sl['bare_small_over_large_rate']:>9.3f}"
    )
    print(f"dockd overhead per small file: {sl['dockd_overhead_ms_per_file']:.1f} ms")

    print(f"\n{'figure':<40} {'value':>9} {'target':>9}  verdict")
    print(
        f"{'dockd / naive (time)':<40} {ratios['dockd_over_naive']:>9.3f} "
        f"{'<= ' + str(TARGET_DOCKD_NAIVE):>9}  {verdict(targets['dockd_over_naive']['met'])}"
    )
    print(
        f"{'dockd / bare (time)':<40} {ratios['dockd_over_bare']:>9.3f} "
        f"{'<= ' + str(TARGET_DOCKD_BARE):>9}  {verdict(targets['dockd_over_bare']['met'])}"
    )
    print(f"{'small / large (dockd rate)':<40} {ratios['small_over_large_rate']:>9.3f} {'-':>9}")
    print(
        f"{'peak RSS, MiB (wait4 ru_maxrss)':<40} {rss['wait4_ru_maxrss']:>9.1f} "
        f"{'<= ' + str(int(TARGET_RSS_MIB)):>9}  {verdict(targets['peak_rss_mib']['met'])}"
    )
    print(f"{'  of it the dockd process (VmHWM)':<40} {rss['dockd_process_vmhwm']:>9.1f}")
    print(
        "\nru_maxrss from wait4 is the largest of the dockd process and the children it"
        "\nwaited for (ffprobe); VmHWM is dockd's own peak, polled every 10 ms."
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
    parser.add_argument("--seed", type=int, default=947, help="seed for sizes and bytes")
    args = parser.parse_args(argv)
    if args.gib <= 0 or args.repeat < 1 or args.clips < 0 or args.small_kib < 1:
        parser.error("--gib, --repeat and --small-kib must be positive, --clips not negative")
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
