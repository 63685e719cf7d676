"""Dock-scale benchmark: many cameras docked at once, each throttled to its USB link.

Run as `make bench` (`.venv/bin/python bench/dock_scale.py`), as root with
/dev/fuse, fusefat, losetup, umockdev and the cgroup v1 blkio controller (or
cgroup v2 with io); `--help` lists the options. A benchmark, not a test: it
prints figures, and exits non-zero only when something is wrong (a camera not
ingested and wiped, a stored hash that differs from the bytes written).

The scenario (defaults): 16 cameras at USB 2.0 speed (35 MB/s) and 4 at USB 3
speed (350 MB/s), each a FAT32 image on its own loop device, holding
`--files` clips of distinct seeded random bytes behind a real 1 s MP4 header
(so the probe reads each as footage), recorded at different hours, so that
their offload deadlines differ. For each `--workers` value:

1. fresh copies of the images on fresh loop devices, a fresh state directory;
2. `dockd run` (FUSE mounts, as bench/dock.py) under umockdev-wrapper, put
   into a blkio cgroup that caps reads of each loop device at its camera's
   link rate (`blkio.throttle.read_bps_device`; the fusefat processes the
   daemon starts inherit it, and their reads of the loop device are what the
   cap meters). `--no-throttle` leaves the links unlimited;
3. page cache dropped, then every camera is plugged (udev `add` through
   umockdev) in a random order, `--spread` seconds apart;
4. the daemon's status is asked every 0.2 s until every slot is done.

Per camera it reports the link rate, the effective rate of its session
(bytes / session.start..session.done from the daemon's JSON log) and of its
copy phase (to its last file committed: without the wipe, remounts and
session end), the share of the link each is, the wait in the queue and "docked -> safe to undock"
(udev add until the slot says done). Per run: the total rate against the
store disk's sequential write rate (dd with fdatasync, measured first) and
the SHA-256 rate of one core, CPU seconds per GiB (daemon and children), and
whether each session that started while others waited in the queue had the
earliest deadline of them (from the daemon's "queued" and session.start
events against the deadlines the clips' names give).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.dock import (  # noqa: E402
    FOLDER,
    MB,
    MiB,
    StatusPoller,
    attached,
    drop_caches,
    find_dockd,
    missing_prerequisite,
    proc_cpu,
    read_events,
    start_daemon,
    tail,
    unmount_under,
    wait_daemon,
    wait_exit,
    write_clip,
)
from tests.devices.udev_testbed import UdevTestbed  # noqa: E402
from tests.volumes import fat_files, fat_put, make_fat32_image  # noqa: E402

ZONE = "Asia/Shanghai"
BLKIO = Path("/sys/fs/cgroup/blkio")
CGROUP2 = Path("/sys/fs/cgroup")
TARGET_LINK_SHARE = 0.95  # each camera's effective rate / its link rate, at least


@dataclass(frozen=True)
class Camera:
    serial: str
    port: int
    link_mb_s: float
    image: Path
    files: dict[str, str]  # path on the volume -> sha256
    size: int
    deadline: datetime


def _mp4_header(work: Path) -> bytes:
    from dockd.demo import make_clip

    clip = work / "header.mp4"
    make_clip(clip, datetime.now(UTC) - timedelta(hours=1), seconds=1.0)
    data = clip.read_bytes()
    clip.unlink()
    return data


def build_camera(
    work: Path, index: int, link: float, size: int, files: int, header: bytes, rng: random.Random
) -> Camera:
    """A FAT32 image of `files` clips, `size` bytes in all, recorded some hours ago."""
    from dockd.demo import gat947_name

    serial = f"BENCH{index:04d}"
    device = f"DSJ{index:04d}"
    image = make_fat32_image(work / f"{serial}.img", size // MiB + files + 80)
    recorded = datetime.now(UTC) - timedelta(hours=rng.uniform(1, 20))
    each = size // files
    found: dict[str, str] = {}
    scratch = work / "clip.tmp"
    for i in range(files):
        start = recorded + timedelta(minutes=3 * i)
        name = gat947_name("012345", device, start, i + 1, ZONE)
        box = (each - len(header)).to_bytes(4, "big") + b"free"  # holds the random bytes
        found[f"{FOLDER}/{name}"] = write_clip(scratch, each, rng, header + box)
        fat_put(image, f"{FOLDER}/{name}", scratch)
    scratch.unlink()
    # Deadline of its oldest clip: its end (start + about 1 s) + 24 h (rule R1).
    return Camera(serial, index, link, image, found, each * files, recorded + timedelta(hours=24))


def store_write_rate(folder: Path, size: int = 1 << 30) -> float:
    """MB/s of a sequential write with fdatasync where the state directory lives."""
    target = folder / "dd.tmp"
    started = time.perf_counter()
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={target}", "bs=1M", f"count={size // MiB}", "conv=fdatasync"],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    target.unlink()
    return size / seconds / MB


def sha256_rate() -> float:
    import hashlib

    data = os.urandom(64 * MiB)
    started = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return len(data) / (time.perf_counter() - started) / MB


# -- the throttle --------------------------------------------------------------------------


def throttle_missing() -> str | None:
    if (BLKIO / "blkio.throttle.read_bps_device").exists():
        return None
    controllers = CGROUP2 / "cgroup.controllers"
    if controllers.exists() and "io" in controllers.read_text().split():
        return None
    return "no blkio (cgroup v1) or io (cgroup v2) controller to throttle the loop devices"


@contextlib.contextmanager
def throttled(limits: dict[str, float]) -> Iterator[Path]:
    """A cgroup whose reads of each device (/dev/loopN -> MB/s) are capped."""
    v1 = (BLKIO / "blkio.throttle.read_bps_device").exists()
    group = (BLKIO if v1 else CGROUP2) / f"dockd-bench-{os.getpid()}"
    group.mkdir()
    try:
        for device, mb_s in limits.items():
            st = os.stat(device)
            numbers = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
            if v1:
                line = f"{numbers} {int(mb_s * MB)}"
                (group / "blkio.throttle.read_bps_device").write_text(line)
            else:
                (group / "io.max").write_text(f"{numbers} rbps={int(mb_s * MB)}")
        yield group
    finally:
        for _ in range(50):  # its processes must have left (moved back or exited)
            with contextlib.suppress(OSError):
                group.rmdir()
                break
            time.sleep(0.1)


def join(group: Path, pid: int) -> None:
    (group / "cgroup.procs").write_text(str(pid))


def leave(group: Path) -> None:
    """Move what is left in the group back to the root group, so it can be removed."""
    root = group.parent / "cgroup.procs"
    for pid in (group / "cgroup.procs").read_text().split():
        with contextlib.suppress(OSError):
            root.write_text(pid)


# -- one run -------------------------------------------------------------------------------


def write_config(run_dir: Path, workers: int) -> Path:
    path = run_dir / "dockd.toml"
    path.write_text(
        f"state_dir = {json.dumps(str(run_dir / 'state'))}\n"
        "[ingest]\nchange_retry_delay = 0\n"
        f"[daemon]\nruntime_dir = {json.dumps(str(run_dir / 'run'))}\n"
        f'mount_backend = "fuse"\nworkers = {workers}\n'
        '[log]\nformat = "json"\n',
        encoding="utf-8",
    )
    return path


def run_once(
    dockd: Path,
    cameras: Sequence[Camera],
    work: Path,
    workers: int,
    throttle: bool,
    spread: float,
    rng: random.Random,
) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"workers{workers}-", dir=work))
    for cam in cameras:
        shutil.copyfile(cam.image, run_dir / cam.image.name)
    config = write_config(run_dir, workers)
    log_path = run_dir / "dockd.log"
    status = StatusPoller(dockd, config, use_cli=False)
    docked: dict[str, float] = {}
    safe: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        devices = {c.serial: stack.enter_context(attached(run_dir / c.image.name)) for c in cameras}
        limits = {devices[c.serial]: c.link_mb_s for c in cameras} if throttle else {}
        group = stack.enter_context(throttled(limits)) if throttle else None
        tb = stack.enter_context(UdevTestbed(timeout=60))
        log = stack.enter_context(log_path.open("wb"))
        proc = start_daemon(tb, dockd, config, log)
        try:
            pid = wait_daemon(proc, status, log_path)
            if group is not None:
                join(group, pid)  # before any fusefat starts: they inherit it
            drop_caches()
            cpu0 = proc_cpu(pid)
            order = list(cameras)
            rng.shuffle(order)
            slots: dict[str, Any] = {}
            for cam in order:
                mock = tb.add_camera(cam.serial, port=cam.port, devnode=devices[cam.serial])
                slots[cam.serial] = mock.slot
                docked[cam.serial] = time.time()
                time.sleep(spread)
            deadline = time.monotonic() + 1800
            while len(safe) < len(cameras):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"bench: the daemon did not finish:\n{tail(log_path)}")
                answer = status() or {}
                by_slot = {s["slot"]: s for s in answer.get("slots", [])}
                for cam in cameras:
                    slot = by_slot.get(slots[cam.serial])
                    if cam.serial not in safe and slot and slot["state"] in ("done", "error"):
                        if slot["state"] != "done":
                            raise SystemExit(f"bench: {cam.serial} ended in error: {slot}")
                        safe[cam.serial] = time.time()
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            # Read while a zombie: the daemon's own CPU and its reaped children's
            # (fusefat, probe workers, ffprobe), both since the first docking.
            exited = wait_exit(proc, 120)
            code = exited.code
            cpu = (exited.cpu - cpu0[0], exited.children_cpu - cpu0[1])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            if group is not None:
                leave(group)
            unmount_under(run_dir / "run")
        if code != 0:
            raise SystemExit(f"bench: the daemon exited {code} on SIGTERM:\n{tail(log_path)}")
        _check(dockd, config, cameras, run_dir)
    events = read_events(log_path)
    shutil.rmtree(run_dir, ignore_errors=True)
    return _figures(cameras, events, docked, safe, cpu, workers)


def _check(dockd: Path, config: Path, cameras: Sequence[Camera], run_dir: Path) -> None:
    listed = subprocess.run(
        [str(dockd), "--config", str(config), "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    stored = {(r["device_serial"], r["sha256"]) for r in json.loads(listed.stdout)}
    for cam in cameras:
        for path, sha in cam.files.items():
            if (cam.serial, sha) not in stored:
                raise SystemExit(f"bench: {cam.serial} {path}: not stored with its hash")
        left = fat_files(run_dir / cam.image.name)
        if left:
            raise SystemExit(f"bench: {cam.serial}: not wiped: {left}")


def _figures(
    cameras: Sequence[Camera],
    events: Sequence[Any],
    docked: dict[str, float],
    safe: dict[str, float],
    cpu: tuple[float, float],
    workers: int,
) -> dict[str, Any]:
    starts = {e.fields.get("serial"): e.wall for e in events if e.name == "session.start"}
    ends = {e.fields.get("serial"): e.wall for e in events if e.name == "session.done"}
    serial_of = {e.fields.get("session"): e.fields.get("serial") for e in events
                 if e.name == "session.start"}  # fmt: skip
    # The copy phase: from the session's start to its last file committed (the rest
    # of a session is its wipe, remounts and end).
    copied: dict[str, float] = {}
    for e in events:
        if e.name in ("ingest.file.ingested", "ingest.file.flagged"):
            serial = serial_of.get(e.fields.get("session"))
            if serial is not None:
                copied[serial] = max(copied.get(serial, 0.0), e.wall)
    rows = []
    for cam in cameras:
        start, end = starts[cam.serial], ends[cam.serial]
        effective = cam.size / (end - start) / MB
        copy_rate = cam.size / (copied[cam.serial] - start) / MB
        rows.append(
            {
                "serial": cam.serial,
                "link_mb_s": cam.link_mb_s,
                "bytes": cam.size,
                "effective_mb_s": effective,
                "link_share": effective / cam.link_mb_s,
                "copy_mb_s": copy_rate,
                "copy_link_share": copy_rate / cam.link_mb_s,
                "queued_s": start - docked[cam.serial],
                "session_s": end - start,
                "docked_to_safe_s": safe[cam.serial] - docked[cam.serial],
                "deadline": cam.deadline.isoformat(),
            }
        )
    total = sum(c.size for c in cameras)
    span = max(safe.values()) - min(docked.values())
    # EDF: when a session starts, no camera then waiting in the queue (its slot said
    # "queued" earlier, its session starts later) may have an earlier deadline.
    slot_serial = {e.fields.get("slot"): e.fields.get("serial") for e in events
                   if e.name == "session.start"}  # fmt: skip
    queued = {
        slot_serial.get(e.fields.get("slot")): e.wall
        for e in events
        if e.name == "slot.state" and e.fields.get("state") == "queued"
    }
    deadline = {c.serial: c.deadline for c in cameras}
    checked, broken = 0, []
    for serial, started in starts.items():
        waiting = [s for s, t in queued.items() if t < started < starts.get(s, 0)]
        if waiting:
            checked += 1
            early = [s for s in waiting if deadline[s] < deadline[serial]]
            if early:
                broken.append(f"{serial} started before {','.join(early)}")
    edf_ok = not broken
    return {
        "workers": workers,
        "cameras": rows,
        "total_bytes": total,
        "span_s": span,
        "total_mb_s": total / span / MB,
        "cpu_s": sum(cpu),
        "cpu_dockd_s": cpu[0],
        "cpu_children_s": cpu[1],
        "cpu_s_per_gib": sum(cpu) / (total / (1 << 30)),
        "edf": {"checked_sessions": checked, "ok": edf_ok, "broken": broken},
        "min_link_share": min(r["link_share"] for r in rows),
        "min_copy_link_share": min(r["copy_link_share"] for r in rows),
    }


# -- all of it -----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    dockd = find_dockd(args.dockd)
    rng = random.Random(args.seed)
    parent = args.dir or Path(tempfile.gettempdir())
    work = Path(tempfile.mkdtemp(prefix="dockd-scale-bench-", dir=parent))
    try:
        header = _mp4_header(work)
        images = work / "images"
        images.mkdir()
        cameras = [
            build_camera(
                images, i + 1, args.slow_rate, args.slow_mib * MiB, args.files, header, rng
            )
            for i in range(args.slow)
        ] + [
            build_camera(
                images,
                args.slow + i + 1,
                args.fast_rate,
                args.fast_mib * MiB,
                args.files,
                header,
                rng,
            )
            for i in range(args.fast)
        ]
        disk = store_write_rate(work)
        runs = [
            run_once(dockd, cameras, work, w, args.throttle, args.spread, rng) for w in args.workers
        ]
    finally:
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "command": " ".join([sys.executable, *sys.argv]),
        "cameras": {"slow": args.slow, "fast": args.fast, "files_each": args.files},
        "throttle": "blkio read_bps_device per loop device" if args.throttle else "none",
        "store_disk_write_mb_s": disk,
        "sha256_one_core_mb_s": sha256_rate(),
        "cpus": os.cpu_count(),
        "runs": runs,
        "target_link_share": TARGET_LINK_SHARE,
    }


def print_table(res: dict[str, Any]) -> None:
    print(
        f"{res['cameras']['slow']} cameras at USB 2.0 and {res['cameras']['fast']} at USB 3, "
        f"{res['cameras']['files_each']} clips each; throttle: {res['throttle']}"
    )
    print(
        f"store disk write {res['store_disk_write_mb_s']:.0f} MB/s (dd, fdatasync); "
        f"SHA-256 {res['sha256_one_core_mb_s']:.0f} MB/s on one core; {res['cpus']} CPUs\n"
    )
    for r in res["runs"]:
        print(f"daemon.workers = {r['workers']}")
        print(
            f"  {'camera':<10} {'link':>6} {'MB/s':>7} {'share':>6} {'copy':>7} {'share':>6} "
            f"{'queued':>7} {'session':>8} {'docked->safe':>13}"
        )
        for c in sorted(r["cameras"], key=lambda c: c["queued_s"]):
            print(
                f"  {c['serial']:<10} {c['link_mb_s']:>6.0f} {c['effective_mb_s']:>7.1f} "
                f"{c['link_share']:>6.0%} {c['copy_mb_s']:>7.1f} {c['copy_link_share']:>6.0%} "
                f"{c['queued_s']:>6.1f}s {c['session_s']:>7.1f}s "
                f"{c['docked_to_safe_s']:>12.1f}s"
            )
        met = r["min_link_share"] >= TARGET_LINK_SHARE
        print(
            f"  total {r['total_bytes'] / MiB:.0f} MiB in {r['span_s']:.1f} s = "
            f"{r['total_mb_s']:.0f} MB/s ({r['total_mb_s'] / res['store_disk_write_mb_s']:.0%} of "
            f"the disk's write rate); CPU {r['cpu_s']:.1f} s = {r['cpu_s_per_gib']:.1f} s/GiB "
            f"(dockd {r['cpu_dockd_s']:.1f} s, its children {r['cpu_children_s']:.1f} s)"
        )
        print(
            f"  lowest link share {r['min_link_share']:.0%} of the session, "
            f"{r['min_copy_link_share']:.0%} of its copy (target >= {TARGET_LINK_SHARE:.0%}: "
            f"{'met' if met else 'NOT met'}); EDF order of the "
            f"{r['edf']['checked_sessions']} sessions started while others waited: "
            f"{'held' if r['edf']['ok'] else 'BROKEN: ' + '; '.join(r['edf']['broken'])}\n"
        )
    shares = {
        r["workers"]: statistics.median(c["link_share"] for c in r["cameras"]) for r in res["runs"]
    }
    print(
        "median link share by daemon.workers: "
        + ", ".join(f"{w}: {s:.0%}" for w, s in shares.items())
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--slow", type=int, default=16, help="cameras at USB 2.0 (default 16)")
    parser.add_argument("--fast", type=int, default=4, help="cameras at USB 3 (default 4)")
    parser.add_argument("--slow-rate", type=float, default=35.0, help="MB/s of a USB 2.0 link")
    parser.add_argument("--fast-rate", type=float, default=350.0, help="MB/s of a USB 3 link")
    parser.add_argument("--slow-mib", type=int, default=96, help="MiB on each USB 2.0 camera")
    parser.add_argument("--fast-mib", type=int, default=384, help="MiB on each USB 3 camera")
    parser.add_argument("--files", type=int, default=4, help="clips on each camera")
    parser.add_argument(
        "--workers",
        type=lambda text: [int(w) for w in text.split(",")],
        default=[2, 4, 8, 20],
        help="daemon.workers values, one run each (default 2,4,8,20)",
    )
    parser.add_argument("--spread", type=float, default=0.1, help="seconds between two dockings")
    parser.add_argument("--no-throttle", dest="throttle", action="store_false")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the work directory")
    parser.add_argument("--dockd", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=947)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_prerequisite() or (throttle_missing() if args.throttle else None)
    if missing:
        print(f"bench/dock_scale.py: skipped: {missing}")
        return 0
    res = run(args)
    if args.json:
        print(json.dumps(res, sort_keys=True, default=str))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
