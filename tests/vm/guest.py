"""What the tests ask the guest: dockd's own commands, its journal, its mounts.

Polling goes through journalctl (a C program: a fraction of a second even
under TCG), not through `dockd status`, whose Python start-up costs several
seconds in the emulated guest; the dockd CLI is asked for what only it can
tell (status, list, verify, doctor), once per check.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from typing import Any

from tests.vm.machine import ExecResult, Machine, VMError

# The checkout inside the guest image, where tests/vm/image.py put it.
GUEST_SRC = "/root/dockd"


@dataclass(frozen=True)
class Install:
    """The in-guest `make install` and how long it took."""

    result: ExecResult
    seconds: float


def provision(m: Machine) -> Install:
    """Finish the install in the booted guest, as IT would: `make install DOCKD_ENABLE=1`.

    The venv was made by the same `make install` in a chroot when the image
    was built (tests/vm/image.py says why); DOCKD_SKIP_VENV=1 leaves it as
    it is. What runs here is everything that needs a live systemd and udevd:
    daemon-reload, the udev rules reload, `systemctl enable --now dockd`.
    """
    t0 = time.monotonic()
    result = m.sh(
        f"cd {GUEST_SRC} && make install DOCKD_ENABLE=1 DOCKD_SKIP_VENV=1 2>&1", timeout=600
    )
    return Install(result, time.monotonic() - t0)


def dockd_json(m: Machine, *args: str, timeout: float = 180.0) -> tuple[int | None, Any]:
    """`dockd ARGS --json` as root in the guest: (exit code, parsed stdout)."""
    r = m.run(["dockd", *args, "--json"], timeout=timeout)
    try:
        return r.rc, json.loads(r.stdout)
    except ValueError:
        raise VMError(f"dockd {' '.join(args)} --json printed no JSON: {r}") from None


def journal(
    m: Machine, event: str | None = None, since: int = 0, this_boot: bool = False, **fields: str
) -> list[dict[str, Any]]:
    """dockd's journal entries (oldest first) matched on DOCKD_EVENT and DOCKD_<FIELD>s.

    `since`: only entries after this mark (journal_mark), compared with each
    entry's __REALTIME_TIMESTAMP here. (A cursor from `journalctl -n 0
    --show-cursor` with --after-cursor plus field matches found nothing in
    systemd 252 although the entries were there; a time mark is plain.)
    """
    matches = []
    if event is not None:
        matches.append(f"DOCKD_EVENT={event}")
    matches += [f"DOCKD_{k.upper()}={v}" for k, v in fields.items()]
    window = f"--since=@{since // 1_000_000}" if since else ""
    if this_boot:
        window += " --boot"
    r = m.sh(
        f"journalctl -u dockd.service -o json --no-pager {window} "
        + " ".join(shlex.quote(x) for x in matches)
    )
    entries = []
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            entry = json.loads(line)
            if int(entry["__REALTIME_TIMESTAMP"]) > since:
                entries.append(entry)
    return entries


def journal_mark(m: Machine) -> int:
    """The guest's clock now, in the journal's unit (microseconds since the epoch)."""
    return int(m.run(["date", "+%s%6N"]).stdout)


def wait_journal(
    m: Machine,
    event: str,
    timeout: float,
    count: int = 1,
    since: int = 0,
    interval: float = 1.0,
    this_boot: bool = False,
    **fields: str,
) -> list[dict[str, Any]]:
    """Wait until at least `count` matching entries are in dockd's journal."""
    deadline = time.monotonic() + timeout
    while True:
        found = journal(m, event, since, this_boot, **fields)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            tail = m.sh("journalctl -u dockd.service --no-pager -n 30").stdout
            raise VMError(
                f"{count} x {event} {fields} not in dockd's journal after {timeout} s "
                f"(found {len(found)}):\n{tail}"
            )
        time.sleep(interval)


def main_pid(m: Machine) -> int:
    return int(m.run(["systemctl", "show", "-p", "MainPID", "--value", "dockd"]).stdout)


def unit_props(m: Machine, *names: str) -> dict[str, str]:
    out = m.run(["systemctl", "show", "dockd", *[f"-p{n}" for n in names]]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def camera_mounts(m: Machine) -> list[str]:
    """Mounts under /run/dockd/mounts as dockd sees them (PrivateMounts: its own namespace)."""
    pid = main_pid(m)
    source = f"/proc/{pid}/mounts" if pid else "/proc/self/mounts"
    r = m.sh(f"grep ' /run/dockd/mounts/' {source} || true")
    return [line for line in r.stdout.splitlines() if line.strip()]


def store_objects(m: Machine) -> list[str]:
    """The SHA-256 names of the evidence objects (store/sha256/ab/<hex>, dockd/store.py)."""
    r = m.sh("find /var/lib/dockd/store/sha256 -type f -printf '%f\\n' | sort")
    return r.stdout.split()


def store_temps(m: Machine) -> list[str]:
    """Copies in progress (store/tmp/*.part): none may be left once a session ended."""
    r = m.sh("find /var/lib/dockd/store/tmp -type f -printf '%f\\n'")
    return r.stdout.split()


def recordings(m: Machine, serial: str | None = None) -> list[dict[str, Any]]:
    rc, rows = dockd_json(m, "list")
    if rc != 0:
        raise VMError(f"dockd list exited {rc}")
    return [r for r in rows if serial is None or r["device_serial"] == serial]


FILE_COMMITTED = ("ingest.file.ingested", "ingest.file.flagged")


def session_of(m: Machine, serial: str, timeout: float, since: int = 0) -> int:
    """The id of the docking session that dockd started for `serial` (session.start)."""
    found = wait_journal(m, "session.start", timeout, since=since, serial=serial)
    return int(found[-1]["DOCKD_SESSION"])


def wait_committed(m: Machine, session: int, count: int, timeout: float) -> list[dict[str, Any]]:
    """Wait until `count` files of `session` have their catalog row (ingested or flagged)."""
    deadline = time.monotonic() + timeout
    while True:
        done = [
            e for e in journal(m, None, session=str(session)) if e["DOCKD_EVENT"] in FILE_COMMITTED
        ]
        if len(done) >= count:
            return done
        if time.monotonic() > deadline:
            raise VMError(f"session {session}: {len(done)} of {count} files after {timeout} s")
        time.sleep(0.5)
