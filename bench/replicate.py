"""Replication benchmark: dockd's uploader against bare boto3, on the same radosgw.

Run as `.venv/bin/python bench/replicate.py`; `--help` lists the options. Like
bench/ingest.py this is a benchmark, not a test: it prints figures measured
side by side in one run and marks the target met or not met. It exits
non-zero only when something is *wrong* (Ceph does not start, an upload fails
or is not proven, a method does not put every file in its bucket), never
because the target was missed. Without the Ceph binaries it says so and
exits 0 (`make setup` installs them).

What it does, in one temporary work directory (deleted at the end unless
`--keep`):

1. Starts a single-node Ceph 16 with radosgw (tests/replicate/ceph.py: mon,
   one bluestore OSD on a sparse file, radosgw on 127.0.0.1), stopped in a
   `finally` whatever happens.
2. Writes a camera volume of `--mib` MiB of unique random bytes in
   DCIM/100MEDIA, named as a GA/T 947 camera names them: about half the
   bytes in files of 1.5 to 6 `--part-size`s (multipart uploads) and the
   rest in many smaller files, 64 KiB up to just under the part size. Random
   bytes are no media: ffprobe rejects each file and dockd flags it
   `unreadable_media`, which does not matter here.
3. Ingests it once, untimed, with `run_session` into a dock state with
   replication off. Each dockd run gets a fresh copy of that state (the
   store's object files hard-linked, the rest copied) and a fresh bucket:
   the Service's start queues every object, log segment, checkpoint, key and
   session extract for it (`queue_missing`, untimed), and then only
   `Uploader(...).drain()` is timed: the bucket check, per object a HEAD
   (`existing`), the upload with Content-MD5 on every request and the
   SHA-256 in the metadata (one PUT, or a multipart upload of `part_size`
   parts and a PutObjectRetention for its COMPLIANCE lock), a HEAD that
   proves it, the queue's SQLite updates, the `replicate.verified` entries,
   a new checkpoint and its upload. dockd logs as it would on a dock (info,
   key=value, here into /dev/null).
4. Times bare boto3 on the same files (the same store inodes): one
   `client.upload_file(path, bucket, key)` per file, default TransferConfig
   (multipart above 8 MiB in 8 MiB parts, up to 10 threads per file), into
   another fresh bucket with Object Lock; no checksums or locks of its own.
   A diagnostic (skipped with `--no-diagnose`) does the same with
   `TransferConfig(use_threads=False)`: boto3 one request at a time.
5. Each run is a forked child process, so that one run's heap is not the
   next run's floor. In it: wall time (perf_counter), CPU seconds of the
   process (getrusage RUSAGE_SELF: every thread of it, so boto3's transfer
   threads too), peak RSS increase (VmHWM reset through /proc/self/clear_refs,
   else VmRSS polled every 5 ms, minus VmRSS at the start), and the CPU
   seconds radosgw and the OSD used meanwhile (/proc/PID/stat of their pid
   files). Those are separate processes: the CPU per GiB of dockd and
   boto3 excludes them.
6. `--repeat` rounds of every method, the order rotated each round (the
   machine is shared and noisy); each method's best (fastest) run is
   reported, with its CPU; the peak RSS is the largest over all runs.
   The page cache is warm for every run (the ingest just wrote the store):
   this measures the upload path, not the disk.

The target: dockd's drain at least 0.9 x bare boto3's rate. drain() runs
`replicate.workers` uploads at once (default 2, as the daemon's uploader
does), each sending a multipart upload's parts one after another, while
upload_file sends one file at a time with up to 10 parts at once; the
diagnostic row shows what boto3's threads are worth here. `--profile` runs
one more drain under cProfile and prints where its time goes (not part of
the figures).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import json
import math
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Measure the dockd of this checkout, whichever one the virtualenv has installed.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the Ceph helper lives in tests/

from tests.replicate.ceph import Ceph, S3User, missing_binaries  # noqa: E402

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
SERIAL = "DSJ0001"
ZONE = "Asia/Shanghai"
TARGET_RATIO = 0.9  # dockd's rate / bare boto3's rate, at least
OSD_BYTES = 10 * GiB  # bluestore block size in tests/replicate/ceph.py
MAX_UPLOADED = 7 * GiB  # all runs together: locked objects cannot be deleted
BOTO_THRESHOLD = 8 * MiB  # boto3's default TransferConfig: multipart_threshold
BOTO_CHUNK = 8 * MiB  # ... multipart_chunksize
BOTO_THREADS = 10  # ... max_concurrency
RSS_POLL_S = 0.005


def say(quiet: bool) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr, flush=True)

    return log


# -- the camera volume ------------------------------------------------------------


def plan_sizes(total: int, part_size: int, rng: random.Random) -> list[int]:
    """About half the bytes in files above `part_size`, the rest in smaller ones."""
    sizes: list[int] = []
    left = total
    big = total // 2
    while big > part_size:
        size = min(big, rng.randrange(3 * part_size // 2, 6 * part_size) + rng.randrange(KiB))
        if big - size <= part_size:
            size = big  # no big file too small to be one
        sizes.append(size)
        left -= size
        big -= size
    low, high = math.log(64 * KiB), math.log(part_size)
    while left > 0:
        size = min(left, int(math.exp(rng.uniform(low, high))) + rng.randrange(KiB))
        size = min(size, part_size)  # at most part_size: one PUT
        if left - size < 64 * KiB:
            size = left  # no crumbs at the end
        sizes.append(size)
        left -= size
    rng.shuffle(sizes)
    return sizes


def write_camera(camera: Path, sizes: Sequence[int], seed: int) -> list[Path]:
    """Unique random files, named as a GA/T 947 camera names them, dated today."""
    from dockd.demo import gat947_name

    folder = camera / "DCIM" / "100MEDIA"
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    pool = memoryview(os.urandom(16 * MiB + MiB))
    start = datetime.now(UTC) - timedelta(hours=6)
    counter = 0
    paths: list[Path] = []
    for seq, size in enumerate(sizes, start=1):
        path = folder / gat947_name("012345", SERIAL, start + timedelta(minutes=seq), seq, ZONE)
        with path.open("xb") as out:
            left = size
            while left:
                n = min(MiB, left)
                offset = rng.randrange(16 * MiB)
                counter += 1  # every MiB of every file unique: no two objects alike
                out.write((counter.to_bytes(16, "little") + pool[offset : offset + n])[:n])
                left -= n
        paths.append(path)
    return paths


# -- the dock -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoreFile:
    sha256: str
    path: Path
    size: int


def dock_config(
    state: Path, user: S3User | None, bucket: str, credentials: Path | None, part_size: int
) -> Any:
    """A dock's Config (dockd.config.Config): replication to `bucket`, or off if None."""
    from dockd.config import IngestConfig
    from dockd.settings import parse

    text = ""
    if user is not None and credentials is not None:
        text = (
            "[replicate]\n"
            f'endpoint = "{user.endpoint}"\n'
            f'bucket = "{bucket}"\n'
            f'credentials = "{credentials}"\n'
            f"part_size = {part_size}\n"
        )
    config = parse(text)
    return dataclasses.replace(
        config,
        state_dir=state,
        ingest=IngestConfig(change_retry_delay=0.0, min_free_bytes=0),
    )


def ingest(state: Path, camera: Path, expected: int) -> list[StoreFile]:
    """Dock the camera into a fresh state (replication off); its store's files."""
    from dockd.clock import SystemClock
    from dockd.devices.profiles import make_profile
    from dockd.runner.session import run_session
    from dockd.service import Service

    config = dock_config(state, None, "", None, 0)
    with Service(config, SystemClock()) as service:
        profile = make_profile("gat947", config.profiles)
        report = run_session(service, camera, SERIAL, profile, wipe=False)
        counts = report.counts()
        if counts["ingested"] != expected or counts["failed"]:
            raise SystemExit(f"bench: the ingest did not take every file: {counts}")
        found = {r.sha256: r.size for r in service.recordings()}
        files = [StoreFile(sha, service.store.object_path(sha), n) for sha, n in found.items()]
    if len(files) != expected:
        raise SystemExit(f"bench: {expected} files but {len(files)} objects in the store")
    return sorted(files, key=lambda f: f.path)


def clone_state(source: Path, dest: Path) -> None:
    """A fresh dock state like `source`: store objects hard-linked, the rest copied."""
    store = source / "store"

    def copy(src: str, dst: str) -> None:
        if Path(src).is_relative_to(store):
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(source, dest, copy_function=copy)


# -- measuring a run in a child process ------------------------------------------------


def _status_kib(field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cpu_of(pid: int | None) -> float | None:
    """utime + stime of a process, in seconds (None if it is not there)."""
    if pid is None:
        return None
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # fields[0] is field 3, the state
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Wall time, own CPU, peak RSS increase and the daemons' CPU over a `with` block."""

    def __init__(self, daemons: dict[str, int | None]) -> None:
        self.daemons = daemons
        self.figures: dict[str, Any] = {}
        self._done = threading.Event()
        self._peak = 0
        self._poller: threading.Thread | None = None

    def __enter__(self) -> Meter:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            self.peak_how = "VmHWM reset through /proc/self/clear_refs"
        except OSError:
            self.peak_how = f"VmRSS polled every {RSS_POLL_S * 1e3:.0f} ms"
            self._poller = threading.Thread(target=self._poll, daemon=True)
        self._rss0 = _status_kib("VmRSS")
        self._peak = self._rss0
        if self._poller is not None:
            self._poller.start()
        self._daemons0 = {k: _cpu_of(pid) for k, pid in self.daemons.items()}
        self._cpu0 = _self_cpu()
        self._t0 = time.perf_counter()
        return self

    def _poll(self) -> None:
        while not self._done.wait(RSS_POLL_S):
            self._peak = max(self._peak, _status_kib("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self._t0
        cpu = _self_cpu() - self._cpu0
        daemons: dict[str, float | None] = {}
        for name, pid in self.daemons.items():
            before, after = self._daemons0[name], _cpu_of(pid)
            daemons[name] = None if before is None or after is None else after - before
        if self._poller is not None:
            self._done.set()
            self._poller.join()
            peak = self._peak
        else:
            peak = _status_kib("VmHWM")
        self.figures = {
            "seconds": seconds,
            "cpu_seconds": cpu,
            "rss_start_mib": self._rss0 / 1024,
            "peak_rss_increase_mib": max(0, peak - self._rss0) / 1024,
            "peak_how": self.peak_how,
            "daemon_cpu_seconds": daemons,
        }


def in_child(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`work()` in a forked child; its JSON-able result, or SystemExit with its traceback."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        os.close(read_end)
        try:
            payload = json.dumps({"ok": work()})
        except BaseException:
            payload = json.dumps({"error": traceback.format_exc()})
            code = 1
        try:
            with os.fdopen(write_end, "w") as out:
                out.write(payload)
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as results:
        text = results.read()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    try:
        answer = json.loads(text)
    except ValueError:
        raise SystemExit(f"bench: a measured run died (exit {code}) without an answer") from None
    if "error" in answer:
        raise SystemExit(f"bench: a measured run failed:\n{answer['error']}")
    result: dict[str, Any] = answer["ok"]
    return result


# -- the methods --------------------------------------------------------------------------


@dataclass
class Setup:
    work: Path
    user: S3User
    credentials: Path
    pristine: Path  # the ingested dock state, replication off, never used itself
    files: list[StoreFile]
    part_size: int
    daemons: dict[str, int | None]

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)


def new_bucket(user: S3User, what: str) -> str:
    name = f"bench-{what}-{uuid.uuid4().hex[:10]}"
    user.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


def warm_up(user: S3User, part_size: int) -> float:
    """The first writes of a new cluster create radosgw's pools (~2 s for the first PUT):
    paid here, untimed, by a PUT and a multipart upload, locked, to a bucket of their own."""
    t0 = time.perf_counter()
    s3 = user.client()
    bucket = new_bucket(user, "warmup")
    lock = {
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": datetime.now(UTC) + timedelta(days=1),
    }
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"small-{i}", Body=os.urandom(64 * KiB), **lock)
        s3.head_object(Bucket=bucket, Key=f"small-{i}")
    started = s3.create_multipart_upload(Bucket=bucket, Key="parts", **lock)
    parts = []
    for number in (1, 2):
        sent = s3.upload_part(
            Bucket=bucket,
            Key="parts",
            UploadId=started["UploadId"],
            PartNumber=number,
            Body=os.urandom(max(part_size // 4, 5 * MiB)),
        )
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="parts",
        UploadId=started["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    return time.perf_counter() - t0


def run_dockd(setup: Setup, profile: cProfile.Profile | None = None) -> dict[str, Any]:
    """One timed `Uploader.drain()` of a fresh copy of the dock state to a fresh bucket."""
    bucket_name = new_bucket(setup.user, "dockd")
    state = Path(tempfile.mkdtemp(prefix="state-", dir=setup.work))
    state.rmdir()
    clone_state(setup.pristine, state)
    config = dock_config(state, setup.user, bucket_name, setup.credentials, setup.part_size)

    def work() -> dict[str, Any]:
        from dockd.clock import SystemClock
        from dockd.replicate.bucket import Bucket
        from dockd.runner.replication import Uploader
        from dockd.service import Service

        t0 = time.perf_counter()
        with Service(config, SystemClock()) as service:  # queue_missing: the whole queue
            queued = service.replication_status().pending
            opened = time.perf_counter() - t0
            bucket = Bucket.open(config.replicate)
            uploader = Uploader(service, bucket, service.clock)
            with Meter(setup.daemons) as meter:
                if profile is not None:
                    profile.enable()
                drained = uploader.drain()
                if profile is not None:
                    profile.disable()
            rows = service.catalog.replication_rows()
        if profile is not None:
            text = io.StringIO()
            stats = pstats.Stats(profile, stream=text)
            stats.sort_stats("tottime").print_stats(25)
            stats.sort_stats("cumulative").print_stats(30)
            return {"profile": text.getvalue()}
        if drained.failed or any(r["state"] != "verified" for r in rows):
            bad = [(r["key"], r["last_error"]) for r in rows if r["state"] != "verified"]
            raise RuntimeError(f"drain failed {drained.failed}, not verified: {bad[:3]}")
        objects = [r for r in rows if r["kind"] == "object"]
        if {r["ref"] for r in objects} != {f.sha256 for f in setup.files}:
            raise RuntimeError("the verified objects are not the store's files")
        kinds: dict[str, dict[str, float]] = {}
        for r in rows:
            k = kinds.setdefault(r["kind"], {"count": 0, "bytes": 0, "seconds": 0.0})
            k["count"] += 1
            k["bytes"] += int(r["size"] or 0)
            k["seconds"] += float(r["seconds"] or 0.0)
        return {
            **meter.figures,
            "queued": queued,
            "service_start_seconds": opened,
            "drained": drained.as_json(),
            "by_kind": kinds,
        }

    try:
        return in_child(work)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def run_bare(setup: Setup, threads: bool = True) -> dict[str, Any]:
    """One timed loop of boto3 `upload_file` over the same files to a fresh bucket."""
    bucket = new_bucket(setup.user, "bare" if threads else "bare1")

    def work() -> dict[str, Any]:
        from boto3.s3.transfer import TransferConfig

        client = setup.user.client()
        config = None if threads else TransferConfig(use_threads=False)
        with Meter(setup.daemons) as meter:
            for f in setup.files:
                client.upload_file(str(f.path), bucket, f"bench/{f.sha256}", Config=config)
        for f in setup.files:
            head = client.head_object(Bucket=bucket, Key=f"bench/{f.sha256}")
            if head["ContentLength"] != f.size:
                raise RuntimeError(f"bench/{f.sha256}: {head['ContentLength']} bytes, {f.size}")
        return meter.figures

    return in_child(work)


# -- the run ------------------------------------------------------------------------------


@dataclass
class Method:
    name: str
    label: str
    run: Callable[[], dict[str, Any]]
    samples: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def best(self) -> dict[str, Any]:
        return min(self.samples, key=lambda s: float(s["seconds"]))


@contextlib.contextmanager
def work_dir(keep: bool, log: Callable[[str], None]) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockd-bench-replicate-"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from dockd import logs

    quiet: bool = args.json
    log = say(quiet)
    total = args.mib * MiB
    part_size: int = args.part_size * MiB
    sizes = plan_sizes(total, part_size, random.Random(args.seed))
    # On a dock, info events in key=value lines; here into /dev/null (formatted and
    # written all the same: their cost is part of dockd's drain).
    devnull = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run)
    logs.configure("info", "keyvalue", stream=devnull)
    with work_dir(args.keep, log) as work:
        cluster = Ceph(work / "ceph")
        kept_ceph = False
        try:
            log(f"starting Ceph + radosgw in {cluster.root} …")
            t0 = time.perf_counter()
            user = cluster.start()
            ceph_s = time.perf_counter() - t0
            warm_s = warm_up(user, part_size)
            log(f"  up in {ceph_s:.1f} s at {user.endpoint}, warmed up in {warm_s:.1f} s")
            credentials = work / "s3-credentials"
            credentials.write_text(
                "[default]\n"
                f"aws_access_key_id = {user.access_key}\n"
                f"aws_secret_access_key = {user.secret_key}\n"
            )
            credentials.chmod(0o600)

            log(f"writing {len(sizes)} files, {args.mib} MiB, and ingesting them (untimed) …")
            t0 = time.perf_counter()
            camera = work / "camera"
            write_camera(camera, sizes, args.seed)
            written_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            files = ingest(work / "pristine", camera, len(sizes))
            ingest_s = time.perf_counter() - t0
            shutil.rmtree(camera)  # the store holds the same bytes
            log(f"  written in {written_s:.1f} s, ingested in {ingest_s:.1f} s")
            daemons = {
                "radosgw": _pid_file(cluster.root / "run" / "client.rgw.a.pid"),
                "osd": _pid_file(cluster.root / "run" / "osd.0.pid"),
            }
            setup = Setup(work, user, credentials, work / "pristine", files, part_size, daemons)

            methods = [
                Method("dockd", "dockd Uploader.drain()", lambda: run_dockd(setup)),
                Method("bare", "bare boto3 upload_file", lambda: run_bare(setup)),
            ]
            if args.diagnose:
                methods.append(
                    Method(
                        "bare_single_thread",
                        "  diagnostic: use_threads=False",
                        lambda: run_bare(setup, threads=False),
                    )
                )
            log(f"timing: {args.repeat} round(s), order rotated each round")
            for i in range(args.repeat):
                k = i % len(methods)
                for method in methods[k:] + methods[:k]:
                    log(f"  {method.label.strip()} …")
                    sample = method.run()
                    method.samples.append(sample)
                    log(
                        f"    {sample['seconds']:.2f} s, "
                        f"{setup.total / MiB / sample['seconds']:.0f} MiB/s"
                    )
            profile_text = ""
            if args.profile:
                log(f"  dockd Uploader.drain() under cProfile, {args.profile} time (not timed) …")
                timer = time.process_time if args.profile == "cpu" else time.perf_counter
                profile_text = str(run_dockd(setup, cProfile.Profile(timer))["profile"])
        finally:
            cluster.stop()
            if cluster.running():
                kept_ceph = True
        if kept_ceph:
            # A daemon that would not stop keeps its logs (they say why): the work dir stays.
            args.keep = True
            log(f"a Ceph daemon would not stop: {cluster.root} kept")
    if profile_text:
        print(profile_text, file=sys.stderr)
    return report(args, setup, methods, ceph_s, ingest_s)


def _pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def report(
    args: argparse.Namespace,
    setup: Setup,
    methods: list[Method],
    ceph_s: float,
    ingest_s: float,
) -> dict[str, Any]:
    total = setup.total
    gib = total / GiB
    sizes = [f.size for f in setup.files]
    part = setup.part_size

    def figures(method: Method) -> dict[str, Any]:
        best = method.best()
        daemons = {
            name: (None if cpu is None else cpu / gib)
            for name, cpu in best["daemon_cpu_seconds"].items()
        }
        return {
            "label": method.label.strip(),
            "seconds": best["seconds"],
            "mib_per_s": total / MiB / best["seconds"],
            "samples_seconds": [s["seconds"] for s in method.samples],
            "cpu_seconds": best["cpu_seconds"],
            "cpu_seconds_per_gib": best["cpu_seconds"] / gib,
            "cpu_utilisation": best["cpu_seconds"] / best["seconds"],
            # The rate this process's CPU alone would allow (one core, a server infinitely
            # fast): how far it is from being the bottleneck.
            "cpu_bound_mib_per_s": total / MiB / best["cpu_seconds"],
            "peak_rss_increase_mib": max(s["peak_rss_increase_mib"] for s in method.samples),
            "rss_start_mib": best["rss_start_mib"],
            "daemon_cpu_seconds_per_gib": daemons,
        }

    by_name = {m.name: m for m in methods}
    out: dict[str, Any] = {name: figures(m) for name, m in by_name.items()}
    dockd_best = by_name["dockd"].best()
    kinds = dockd_best["by_kind"]
    objects = kinds.get("object", {"count": 0, "bytes": 0, "seconds": 0.0})
    others = [v for k, v in kinds.items() if k != "object"]
    other_s = sum(v["seconds"] for v in others)
    out["dockd"].update(
        {
            "queued_at_start": dockd_best["queued"],
            "drained": dockd_best["drained"],
            "service_start_seconds": dockd_best["service_start_seconds"],
            "by_kind": kinds,
            "breakdown_seconds": {
                "object_uploads": objects["seconds"],
                "other_uploads": other_s,
                "rest_of_drain": dockd_best["seconds"] - objects["seconds"] - other_s,
            },
        }
    )
    ratio = out["dockd"]["mib_per_s"] / out["bare"]["mib_per_s"]
    out["ratios"] = {"dockd_over_bare_rate": ratio}
    if "bare_single_thread" in out:
        out["ratios"]["dockd_over_bare_single_thread_rate"] = (
            out["dockd"]["mib_per_s"] / out["bare_single_thread"]["mib_per_s"]
        )
        out["ratios"]["bare_single_thread_over_bare_rate"] = (
            out["bare_single_thread"]["mib_per_s"] / out["bare"]["mib_per_s"]
        )
    out["targets"] = {
        "dockd_over_bare_rate": {"min": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
    }
    big = [s for s in sizes if s > part]
    out["config"] = {
        "command": " ".join([sys.executable, *sys.argv]),
        "files": len(sizes),
        "bytes": total,
        "largest_bytes": max(sizes),
        "smallest_bytes": min(sizes),
        "dockd_multipart_files": len(big),
        "dockd_multipart_bytes": sum(big),
        "boto3_multipart_files": sum(1 for s in sizes if s > BOTO_THRESHOLD),
        "part_size": part,
        "boto3_transfer": {
            "multipart_threshold": BOTO_THRESHOLD,
            "multipart_chunksize": BOTO_CHUNK,
            "max_concurrency": BOTO_THREADS,
        },
        "dockd_workers": "drain(): replicate.workers = 2 uploads at once, parts in order",
        "repeat": args.repeat,
        "best_of": "fastest run of each method; peak RSS: largest over all runs",
        "order": "rotated every round",
        "peak_how": dockd_best["peak_how"],
        "ceph_start_seconds": ceph_s,
        "ingest_seconds": ingest_s,
        "endpoint": setup.user.endpoint,
        "page_cache": "warm (the store was just written)",
    }
    return out


def print_table(res: dict[str, Any], methods: Sequence[str]) -> None:
    cfg = res["config"]
    print(
        f"files: {cfg['files']}, {cfg['bytes'] / MiB:.0f} MiB of random bytes "
        f"({cfg['smallest_bytes'] / KiB:.0f} KiB to {cfg['largest_bytes'] / MiB:.1f} MiB); "
        f"{cfg['dockd_multipart_files']} above part_size "
        f"({cfg['dockd_multipart_bytes'] / MiB:.0f} MiB)"
    )
    print(
        f"dockd: part_size {cfg['part_size'] / MiB:.0f} MiB; drain() runs 2 uploads at once "
        "(replicate.workers), a multipart upload's parts one after another"
    )
    print(
        f"boto3: default TransferConfig: multipart above {BOTO_THRESHOLD // MiB} MiB "
        f"({cfg['boto3_multipart_files']} files) in {BOTO_CHUNK // MiB} MiB parts, "
        f"up to {BOTO_THREADS} threads per file"
    )
    print(
        f"radosgw: single-node Ceph at {cfg['endpoint']} (started in "
        f"{cfg['ceph_start_seconds']:.0f} s); ingest (untimed) {cfg['ingest_seconds']:.1f} s"
    )
    print(
        f"best of {cfg['repeat']} run(s) per method, order rotated every round; each run "
        "in a forked child, fresh bucket with Object Lock; page cache warm"
    )
    print(f"peak RSS: {cfg['peak_how']}, largest increase over all runs\n")

    head = (
        f"{'method':<32} {'seconds':>8} {'MiB/s':>7} {'CPU s/GiB':>10} {'CPU/wall':>9} "
        f"{'RSS +MiB':>9} {'rgw s/GiB':>10} {'osd s/GiB':>10}"
    )
    print(head)
    for name in methods:
        row = res[name]
        dcpu = row["daemon_cpu_seconds_per_gib"]

        def opt(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        label = ("  " if name == "bare_single_thread" else "") + row["label"]
        print(
            f"{label:<32} {row['seconds']:>8.2f} {row['mib_per_s']:>7.0f} "
            f"{row['cpu_seconds_per_gib']:>10.2f} {row['cpu_utilisation']:>9.2f} "
            f"{row['peak_rss_increase_mib']:>9.1f} {opt(dcpu.get('radosgw')):>10} "
            f"{opt(dcpu.get('osd')):>10}"
        )
    for name in methods:
        runs = ", ".join(f"{s:.2f}" for s in res[name]["samples_seconds"])
        print(f"  runs of {res[name]['label']}: {runs} s")
    print(
        "(CPU s/GiB: this process, every thread; radosgw's and the OSD's own CPU are"
        "\n separate processes, excluded there and shown apart: rgw / osd s/GiB)"
    )
    ceilings = ", ".join(
        f"{res[name]['label']} {res[name]['cpu_bound_mib_per_s']:.0f}" for name in methods
    )
    print(f"client CPU alone would allow (MiB/s per CPU second): {ceilings}")

    ratios, met = res["ratios"], res["targets"]["dockd_over_bare_rate"]["met"]
    print(f"\n{'figure':<40} {'value':>7} {'target':>8}  verdict")
    print(
        f"{'dockd / bare boto3 (MiB/s)':<40} {ratios['dockd_over_bare_rate']:>7.2f} "
        f"{'>= ' + str(TARGET_RATIO):>8}  {'MET' if met else 'NOT MET'}"
    )
    if "dockd_over_bare_single_thread_rate" in ratios:
        print(
            f"{'  diagnostic: dockd / boto3 one thread':<40} "
            f"{ratios['dockd_over_bare_single_thread_rate']:>7.2f}"
        )
        print(
            f"{'  diagnostic: boto3 one thread / threads':<40} "
            f"{ratios['bare_single_thread_over_bare_rate']:>7.2f}"
        )

    d = res["dockd"]
    br = d["breakdown_seconds"]
    kinds = d["by_kind"]
    print(
        f"\ndockd drain, fastest run ({d['seconds']:.2f} s), from the queue's per-upload "
        "times (summed over its 2 workers, so they add up to more than the wall time):"
    )
    obj = kinds.get("object", {"count": 0, "bytes": 0})
    print(
        f"  {obj['count']:>4} objects, {obj['bytes'] / MiB:.0f} MiB: "
        f"{br['object_uploads']:.2f} s (HEAD, upload, lock, HEAD, queue row)"
    )
    other = {k: v for k, v in kinds.items() if k != "object"}
    n_other = sum(int(v["count"]) for v in other.values())
    b_other = sum(int(v["bytes"]) for v in other.values())
    names = ", ".join(f"{int(v['count'])} {k}" for k, v in sorted(other.items()))
    print(
        f"  {n_other:>4} other uploads, {b_other / KiB:.0f} KiB ({names}): "
        f"{br['other_uploads']:.2f} s"
    )
    if br["rest_of_drain"] >= 0:
        print(
            f"  the rest: {br['rest_of_drain']:.2f} s (bucket check, log_verified, "
            "extend_locks, checkpoint, claiming rows)"
        )
    print(
        f"  (not timed: the Service's start that queued the {d['queued_at_start']} uploads, "
        f"{d['service_start_seconds']:.2f} s)"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=512, help="MiB of files (default 512)")
    parser.add_argument(
        "--repeat", type=int, default=2, help="rounds of every method; the best counts (2)"
    )
    parser.add_argument(
        "--part-size", type=int, default=16, help="replicate.part_size in MiB (default 16)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--no-diagnose",
        dest="diagnose",
        action="store_false",
        help="skip the diagnostic boto3 runs with use_threads=False",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="wall",
        choices=("wall", "cpu"),
        default=None,
        help="one more dockd drain under cProfile, its top functions on stderr; "
        "timed by the wall clock (default) or by CPU time (`--profile cpu`)",
    )
    parser.add_argument("--seed", type=int, default=16, help="seed for sizes and bytes")
    args = parser.parse_args(argv)
    if args.mib < 1 or args.repeat < 1:
        parser.error("--mib and --repeat must be positive")
    if args.part_size < 5:
        parser.error("--part-size: S3's smallest part is 5 MiB")
    runs = args.repeat * (3 if args.diagnose else 2) + (1 if args.profile else 0)
    if args.mib * MiB * runs > MAX_UPLOADED:
        parser.error(
            f"{runs} runs of {args.mib} MiB do not fit the test cluster's "
            f"{OSD_BYTES // GiB} GiB OSD (at most {MAX_UPLOADED // GiB} GiB in all: "
            "locked objects stay): lower --mib or --repeat"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_binaries()
    if missing:
        print(f"bench: Ceph is not installed ({', '.join(missing)}): run make setup; skipped")
        return 0
    res = run(args)
    if args.json:
        print(json.dumps(res, sort_keys=True))
    else:
        names = ["dockd", "bare"] + (["bare_single_thread"] if args.diagnose else [])
        print_table(res, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
