"""`dockd doctor`: check that this host can run dockd, and say how to fix what is not.

Each check is a `Check` value; `run_checks` runs them all (the I/O edge: real
files, real fsync, real subprocesses, all with injectable roots and runners
for tests), `render_text` and `report_json` present them, and `exit_code`
turns them into the exit status: 1 if any check failed with severity "error".

A check never raises: whatever goes wrong inside one becomes its result.
"""

from __future__ import annotations

import grp
import importlib
import json
import os
import stat
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dockd.access.roles import CONFIDENTIAL, ROLES, gids_of
from dockd.clock import Clock, isoformat_utc
from dockd.config import DEFAULT_CONFIG_PATH, Config
from dockd.doctor import replication as doctor_replication
from dockd.doctor.check import Check, Severity, _fail, _pass
from dockd.doctor.media import Runner, check_ffprobe, check_probe_workers
from dockd.doctor.unit import UNIT_DIRS, UNIT_NAME, first_existing, unit_settings
from dockd.errors import DockdError
from dockd.integrity.keys import load_key
from dockd.progress import size_text

MountCheck = Callable[[str], list[str]]

RULES_NAME = "70-dockd.rules"
# Where udev looks, most specific first (relative to `root`); the unit's: unit.py.
RULES_DIRS = ("etc/udev/rules.d", "run/udev/rules.d", "usr/lib/udev/rules.d", "lib/udev/rules.d")
# A clock before this is a reset RTC, not the present: every deadline and
# recorded time would be wrong (invariant 7, R1).
EARLIEST_PLAUSIBLE_YEAR = 2025
FREE_SPACE_WARN_FACTOR = 10


def run_command(argv: Sequence[str], timeout: float) -> tuple[int, str]:
    """Run argv without a shell; (status, stdout or stderr); never raises."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]}: no answer within {timeout:g} s"
    except OSError as exc:
        return 126, f"{argv[0]}: {exc.strerror or exc}"
    return done.returncode, (done.stdout or done.stderr).strip()


def real_mount_check(backend: str) -> list[str]:
    """dockd.devices.mount.backend_available, imported only when the check runs."""
    try:
        module = importlib.import_module("dockd.devices.mount")
    except ImportError as exc:
        return [f"dockd.devices.mount cannot be imported: {exc}"]
    problems: list[str] = module.backend_available(backend)
    return problems


def run_checks(
    config: Config,
    *,
    clock: Clock,
    config_path: Path | None = None,
    root: Path = Path("/"),
    run: Runner = run_command,
    mount_check: MountCheck = real_mount_check,
) -> list[Check]:
    """Run every check against `config` and this host.

    `config_path` is the file the caller loaded (None: the default path).
    `root` prefixes the host paths of the unit, the rules and /run/systemd,
    so that tests can use a temporary tree.
    """
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("config", lambda: check_config(config_path)),
        ("ffprobe", lambda: check_ffprobe(config, run)),
        ("probe_workers", lambda: check_probe_workers(config)),
        ("state_dir", lambda: check_state_dir(config)),
        ("state_dir.fsync", lambda: check_fsync(config)),
        ("free_space", lambda: check_free_space(config)),
        ("signing_key", lambda: check_signing_key(config)),
        ("group", lambda: check_group(config, root)),
        ("access", lambda: check_access_groups(config)),
        ("systemd_unit", lambda: check_unit(root)),
        ("udev_rules", lambda: check_rules(root)),
        ("clock", lambda: check_clock_plausible(clock)),
        ("clock.sync", lambda: check_clock_sync(root, run)),
        ("mount_backend", lambda: check_mount_backend(config, mount_check)),
        ("block_devices", lambda: check_block_devices(root)),
        ("runtime_dir", lambda: check_runtime_dir(config)),
        ("daemon", lambda: check_daemon_socket(config)),
        ("replication", lambda: doctor_replication.check_replication(config, clock)),
        ("replication.unit", lambda: doctor_replication.check_unit_network(config, root)),
        ("anchor", lambda: doctor_replication.check_anchor(config)),
    ]
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except PermissionError as exc:  # e.g. a 0700 folder, doctor run without root
            results.append(_fail(name, "error", f"cannot look: {exc}", "run dockd doctor as root"))
        except Exception as exc:  # a bug in one check must not hide the others
            results.append(
                _fail(name, "error", f"the check crashed: {exc!r}", "report this as a bug")
            )
    return results


# -- the checks ----------------------------------------------------------------------


def check_config(config_path: Path | None) -> Check:
    """The file the configuration came from (the caller has parsed it already)."""
    if config_path is not None:
        return _pass("config", f"{config_path}: parsed")
    if DEFAULT_CONFIG_PATH.exists():
        return _pass("config", f"{DEFAULT_CONFIG_PATH}: parsed")
    return _pass("config", f"{DEFAULT_CONFIG_PATH}: absent, all defaults in use")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_state_dir(config: Config) -> Check:
    state = config.state_dir
    if not state.exists():
        return _fail(
            "state_dir",
            "warning",
            f"{state} does not exist yet",
            "systemd creates it when dockd first starts (StateDirectory=dockd); "
            f"elsewhere: mkdir -m 0700 {state}",
        )
    if not state.is_dir():
        return _fail(
            "state_dir", "error", f"{state} is not a directory", "set state_dir to a directory"
        )
    if not os.access(state, os.W_OK | os.X_OK):
        return _fail(
            "state_dir", "error", f"{state} is not writable by this user", "run doctor as root"
        )
    mode = stat.S_IMODE(state.stat().st_mode)
    if mode & 0o077:
        return _fail(
            "state_dir",
            "warning",
            f"{state} has mode {mode:04o}: others may read the evidence (R6)",
            f"chmod 0700 {state}",
        )
    return _pass("state_dir", f"{state}: writable, mode {mode:04o}")


def check_fsync(config: Config) -> Check:
    """Write, fsync and remove a file in the state directory, fsyncing the directory.

    The order of writes (DESIGN §4a) rests on both kinds of fsync working on
    the store's filesystem; some network and FUSE filesystems fail them.
    """
    state = config.state_dir
    if not state.is_dir():
        return _fail(
            "state_dir.fsync", "warning", f"{state} missing: not tested", "start dockd once"
        )
    try:
        fd, name = tempfile.mkstemp(prefix=".doctor-", dir=state)
        try:
            os.write(fd, b"dockd doctor fsync probe\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
        dir_fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        return _fail(
            "state_dir.fsync",
            "error",
            f"{state}: {exc.strerror or exc}",
            "put state_dir on a local filesystem that supports fsync (ext4, xfs)",
        )
    return _pass("state_dir.fsync", f"{state}: file and directory fsync work")


def check_free_space(config: Config) -> Check:
    where = _nearest_existing(config.state_dir)
    try:
        st = os.statvfs(where)
    except OSError as exc:
        return _fail("free_space", "error", f"{where}: {exc.strerror or exc}", "")
    free = st.f_bavail * st.f_frsize
    floor = config.ingest.min_free_bytes
    detail = f"{size_text(free)} free on {where} (ingest.min_free_bytes {size_text(floor)})"
    if free < floor:
        return _fail(
            "free_space",
            "error",
            detail + ": every recording would be refused",
            "free space or move state_dir to a larger disk",
        )
    if free < floor * FREE_SPACE_WARN_FACTOR:
        return _fail(
            "free_space",
            "warning",
            detail + f": under {FREE_SPACE_WARN_FACTOR}x the floor",
            "free space, export and sweep, or move state_dir to a larger disk",
        )
    return _pass("free_space", detail)


def key_path(config: Config) -> Path:
    """Where the signing key lives (the same rule as Service._key_path)."""
    configured = config.integrity.key_path
    return Path(configured) if configured else config.state_dir / "keys" / "checkpoint.key"


def check_signing_key(config: Config) -> Check:
    path = key_path(config)
    if not path.exists():
        if (config.state_dir / "catalog.sqlite").exists():
            return _fail(
                "signing_key",
                "error",
                f"{path} is missing but the catalog exists",
                "restore the key from your backup; otherwise dockd makes a new one "
                "and checkpoints are no longer signed by the key you pinned",
            )
        return _fail(
            "signing_key",
            "warning",
            f"{path} does not exist yet",
            "dockd creates it on first start; then pin its public key "
            "(integrity.trusted_keys) and keep a copy off the machine",
        )
    try:
        load_key(path)
    except DockdError as exc:
        return _fail("signing_key", "error", str(exc), f"chmod 0600 {path}, or restore it")
    return _pass("signing_key", f"{path}: Ed25519 key, mode 0600")


def unit_group(root: Path) -> str | None:
    """The Group= the installed unit runs with (drop-ins included), None without a unit."""
    settings = unit_settings(root)
    if settings is None:
        return None
    groups = settings.get("Group", [])
    return groups[-1] if groups else ""  # the last assignment wins, as in systemd


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def check_group(config: Config, root: Path) -> Check:
    """The socket's group exists and is the group the unit runs with.

    The unit keeps no CAP_CHOWN: dockd can give the socket only to its own
    group (Group= in the unit), so daemon.socket_group must be that group.
    """
    wanted = config.daemon.socket_group
    runs_as = unit_group(root)
    names = list(dict.fromkeys(n for n in (wanted, runs_as) if n))
    missing = [n for n in names if not _group_exists(n)]
    if missing:
        return _fail(
            "group",
            "error",
            f"group {', '.join(missing)} does not exist: the socket has no group"
            + (" and the unit cannot start" if runs_as in missing else ""),
            f"groupadd --system {missing[0]} (packaging/install.sh makes dockd)",
        )
    if runs_as is not None and runs_as != wanted:
        return _fail(
            "group",
            "warning",
            f"daemon.socket_group is {wanted!r} but the unit runs with Group={runs_as or 'root'}:"
            " the socket cannot be given to that group",
            f"set Group={wanted} in a drop-in (systemctl edit dockd), or socket_group = "
            f"{runs_as!r}",
        )
    return _pass("group", f"group {wanted!r} exists" + (" (the unit's Group=)" if runs_as else ""))


def check_access_groups(config: Config) -> Check:
    """Each role of [access] names a group that exists (else nobody can hold it)."""
    empty = [role for role in (*ROLES, CONFIDENTIAL) if not gids_of(getattr(config.access, role))]
    if empty:
        return _fail(
            "access",
            # Not an error: the dock ingests, and root (told apart by sudo's login) can decide.
            "warning",
            f"no group exists for the role {', '.join(empty)}: only root can"
            + (" approve requests, so nobody can view or copy" if "supervisor" in empty else
               " do what it allows"),
            f"groupadd --system dockd-{empty[0]} (packaging/install.sh makes them), or name "
            f"existing groups in [access] {empty[0]} = [...]",
        )  # fmt: skip
    return _pass("access", "every role of [access] has a group")


def check_unit(root: Path) -> Check:
    found = first_existing(root, UNIT_DIRS, UNIT_NAME)
    if found is None:
        return _fail(
            "systemd_unit",
            "warning",
            f"{UNIT_NAME} not installed",
            "make install (installs /etc/systemd/system/dockd.service)",
        )
    return _pass("systemd_unit", f"{found}")


def check_rules(root: Path) -> Check:
    found = first_existing(root, RULES_DIRS, RULES_NAME)
    if found is None:
        return _fail(
            "udev_rules",
            "error",
            f"{RULES_NAME} not installed: desktops may automount cameras",
            "make install (installs /etc/udev/rules.d/70-dockd.rules), "
            "then udevadm control --reload",
        )
    try:
        text = found.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return _fail("udev_rules", "error", f"{found}: {exc.strerror or exc}", "")
    if 'TAG+="dockd"' not in text:
        return _fail(
            "udev_rules",
            "warning",
            f"{found} does not tag devices for dockd (edited?)",
            "reinstall it from udev-rules/70-dockd.rules",
        )
    return _pass("udev_rules", f"{found}")


def check_clock_plausible(clock: Clock) -> Check:
    now = clock.now()
    shown = isoformat_utc(now.replace(microsecond=0))
    if now.year < EARLIEST_PLAUSIBLE_YEAR:
        return _fail(
            "clock",
            "error",
            f"system time {shown} is before {EARLIEST_PLAUSIBLE_YEAR}: the clock was reset",
            "set the time (timedatectl set-time, or fix NTP) before docking cameras",
        )
    return _pass("clock", f"system time {shown}")


def check_clock_sync(root: Path, run: Runner) -> Check:
    """NTP synchronisation as systemd sees it; unknown without systemd."""
    if not (root / "run/systemd/system").is_dir():
        return _fail(
            "clock.sync",
            "warning",
            "unknown: systemd is not running, so timedatectl cannot tell",
            "keep the clock synchronised (chrony or systemd-timesyncd)",
        )
    status, output = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], 10.0)
    if status == 0 and output == "yes":
        return _pass("clock.sync", "NTP synchronised")
    if status == 0 and output == "no":
        return _fail(
            "clock.sync",
            "warning",
            "NTP not synchronised: recording deadlines (24 h) rest on this clock",
            "timedatectl set-ntp true (systemd-timesyncd) or configure chrony",
        )
    return _fail(
        "clock.sync",
        "warning",
        f"unknown: timedatectl answered {status}: {output}",
        "check timedatectl status",
    )


def check_mount_backend(config: Config, mount_check: MountCheck) -> Check:
    backend = config.daemon.mount_backend
    try:
        problems = mount_check(backend)
    except Exception as exc:  # the back end's own probe failing is a finding too
        problems = [f"the check failed: {exc!r}"]
    if problems:
        other = "fuse" if backend == "kernel" else "kernel"
        return _fail(
            "mount_backend",
            "error",
            f"{backend}: " + "; ".join(problems),
            f"install what is missing, or set daemon.mount_backend = {other!r}",
        )
    return _pass("mount_backend", f"{backend}: available")


def block_majors(proc_devices: str) -> set[str]:
    """The names in the "Block devices:" part of /proc/devices."""
    names: set[str] = set()
    in_block = False
    for line in proc_devices.splitlines():
        if line.strip().endswith("devices:"):
            in_block = line.strip() == "Block devices:"
            continue
        parts = line.split()
        if in_block and len(parts) == 2:
            names.add(parts[1])
    return names


def check_block_devices(root: Path) -> Check:
    # systemd turns the unit's DeviceAllow=block-sd into device numbers once,
    # when dockd starts, through /proc/devices; were sd_mod loaded only later
    # (the first USB disk), every camera would be refused with EPERM.
    proc = root / "proc/devices"
    try:
        majors = block_majors(proc.read_text())
    except OSError as exc:
        return _fail(
            "block_devices", "warning", f"{proc}: unreadable: {exc.strerror or exc}",
            "run dockd doctor on the dock itself",
        )  # fmt: skip
    if "sd" not in majors:
        return _fail(
            "block_devices",
            "error",
            "sd_mod is not loaded: the unit's DeviceAllow=block-sd allows no device",
            "modprobe sd_mod && systemctl restart dockd "
            "(make install lists it in /etc/modules-load.d/dockd.conf for every boot)",
        )
    return _pass("block_devices", "sd (USB disks) known to the kernel")


def check_runtime_dir(config: Config) -> Check:
    runtime = config.daemon.runtime_dir
    if not runtime.exists():
        return _pass("runtime_dir", f"{runtime}: absent (systemd creates it when dockd starts)")
    if not runtime.is_dir():
        return _fail(
            "runtime_dir",
            "error",
            f"{runtime} is not a directory",
            f"remove {runtime}; systemd recreates it",
        )
    try:
        fd, name = tempfile.mkstemp(prefix=".doctor-", dir=runtime)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return _fail(
            "runtime_dir",
            "error",
            f"{runtime}: not writable: {exc.strerror or exc}",
            "run doctor as root; daemon.runtime_dir must be the unit's RuntimeDirectory",
        )
    return _pass("runtime_dir", f"{runtime}: writable")


def check_daemon_socket(config: Config) -> Check:
    """The daemon's socket, and what the daemon answers on it (`/healthz`)."""
    from dockd.runner.client import DaemonUnavailable, get, socket_path

    sock = socket_path(config)
    try:
        is_socket = stat.S_ISSOCK(sock.stat().st_mode)
    except OSError:
        is_socket = False
    if not is_socket:
        return Check(
            "daemon", False, "info", f"{sock}: absent, the daemon is not running",
            "systemctl enable --now dockd",
        )  # fmt: skip
    try:
        status, _, body = get(sock, "/healthz", timeout=10)
    except DaemonUnavailable:
        return Check(
            "daemon", False, "warning",
            f"{sock}: present, but nobody answers (a crashed daemon's leftover)",
            "systemctl restart dockd; journalctl -u dockd shows why it stopped",
        )  # fmt: skip
    except DockdError as exc:  # not allowed to connect (not in the dockd group)
        return _pass("daemon", f"{sock}: present ({exc})")
    try:
        reasons = [str(r) for r in json.loads(body).get("reasons", [])]
    except (ValueError, AttributeError):
        reasons = [f"unexpected answer (HTTP {status})"]
    if status == 200:
        return _pass("daemon", f"{sock}: the daemon answers and is ready")
    return Check(
        "daemon", False, "warning", f"{sock}: the daemon is not ready: {'; '.join(reasons)}",
        "journalctl -u dockd -p warning",
    )  # fmt: skip


# -- presentation -------------------------------------------------------------------


def exit_code(checks: Sequence[Check]) -> int:
    """1 if any check failed with severity "error", else 0."""
    return 1 if any(not c.ok and c.severity == "error" for c in checks) else 0


_MARKS = {"error": "FAIL", "warning": "WARN", "info": "info"}


def render_text(checks: Sequence[Check]) -> str:
    """One line per check, its fix indented beneath, and a summary line."""
    lines = []
    width = max((len(c.name) for c in checks), default=0)
    for c in checks:
        mark = " ok " if c.ok else _MARKS[c.severity]
        lines.append(f"[{mark}] {c.name.ljust(width)}  {c.detail}")
        if not c.ok and c.fix:
            lines.append(f"       {' ' * width}  fix: {c.fix}")
    errors = sum(1 for c in checks if not c.ok and c.severity == "error")
    warnings = sum(1 for c in checks if not c.ok and c.severity == "warning")
    passed = sum(1 for c in checks if c.ok)
    lines.append(f"doctor: {passed} ok, {warnings} warning(s), {errors} error(s)")
    return "\n".join(lines) + "\n"


def report_json(checks: Sequence[Check]) -> dict[str, Any]:
    """The `--json` document: overall ok (no errors) and every check."""
    return {"ok": exit_code(checks) == 0, "checks": [c.as_json() for c in checks]}


__all__ = [
    "Check",
    "MountCheck",
    "Runner",
    "Severity",
    "exit_code",
    "key_path",
    "real_mount_check",
    "render_text",
    "report_json",
    "run_checks",
    "run_command",
]
