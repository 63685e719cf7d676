"""`dockd doctor`: each check passes on a good host and fails, with a fix, on a bad one.

Real files, real fsync, real statvfs and real subprocesses in temporary
directories; only the host roots (unit, rules, /run/systemd), the command
runner for timedatectl and the mount back-end probe are injected.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import shutil
import socket
import stat
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockd import doctor
from dockd.access.roles import CONFIDENTIAL, ROLES
from dockd.clock import FixedClock
from dockd.config import AccessConfig, Config, DaemonConfig, IngestConfig, IntegrityConfig
from dockd.doctor import Check
from dockd.integrity.keys import write_new_key
from dockd.integrity.note import VerifierKey

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 25, 9, 0, 0, tzinfo=UTC)
EXISTING_GROUP = grp.getgrgid(os.getgid()).gr_name
# A dock's /proc/devices, shortened.
PROC_DEVICES = """Character devices:
  1 mem
  4 tty
189 usb_device

Block devices:
  7 loop
  8 sd
 65 sd
252 virtblk
"""


class FakeRunner:
    """Answers commands by program name; records what was asked."""

    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        self.calls.append(list(argv))
        return self.answers.get(Path(argv[0]).name, (127, f"{argv[0]}: not found"))


GOOD_RUNNER = {
    "ffprobe": (0, "ffprobe version 5.1 Copyright (c) the FFmpeg developers\nbuilt with gcc"),
    "timedatectl": (0, "yes"),
}


def no_problems(backend: str) -> list[str]:
    return []


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A host root with the unit, the rules and a running systemd."""
    root = tmp_path / "root"
    unit = root / "etc/systemd/system/dockd.service"
    unit.parent.mkdir(parents=True)
    # The shipped unit, with a group that exists on this machine (no "dockd" here).
    text = (REPO / "systemd/dockd.service").read_text()
    assert "\nGroup=dockd\n" in text
    unit.write_text(text.replace("\nGroup=dockd\n", f"\nGroup={EXISTING_GROUP}\n"))
    rules = root / "etc/udev/rules.d/70-dockd.rules"
    rules.parent.mkdir(parents=True)
    shutil.copy(REPO / "udev-rules/70-dockd.rules", rules)
    (root / "run/systemd/system").mkdir(parents=True)
    (root / "proc").mkdir()
    (root / "proc/devices").write_text(PROC_DEVICES)
    return root


@pytest.fixture
def good(tmp_path: Path) -> Config:
    """A state directory in use (0700, key 0600, catalog) and a live runtime dir."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    key = write_new_key(state / "keys" / "checkpoint.key")
    (state / "catalog.sqlite").write_bytes(b"")
    runtime = tmp_path / "run"
    runtime.mkdir()
    return dataclasses.replace(
        Config(),
        state_dir=state,
        # Its public key pinned: the log is held against something off the box.
        integrity=IntegrityConfig(trusted_keys=(VerifierKey.of("dockd/test", key).to_text(),)),
        ingest=IngestConfig(min_free_bytes=1),
        daemon=DaemonConfig(runtime_dir=runtime, socket_group=EXISTING_GROUP),
        access=AccessConfig(**{r: (EXISTING_GROUP,) for r in (*ROLES, CONFIDENTIAL)}),
    )


@pytest.fixture
def listening(good: Config) -> Iterator[None]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(good.daemon.runtime_dir / "dockd.sock"))
    sock.listen()
    yield
    sock.close()


def run(
    config: Config,
    host: Path,
    runner: dict[str, tuple[int, str]] | None = None,
    clock: FixedClock | None = None,
    mount_check: doctor.MountCheck = no_problems,
) -> dict[str, Check]:
    checks = doctor.run_checks(
        config,
        clock=clock or FixedClock(NOW),
        config_path=Path("/etc/dockd/dockd.toml"),
        root=host,
        run=FakeRunner(GOOD_RUNNER if runner is None else runner),
        mount_check=mount_check,
    )
    names = [c.name for c in checks]
    assert len(names) == len(set(names)), names
    return {c.name: c for c in checks}


def failed(check: Check, severity: str) -> None:
    assert not check.ok, check
    assert check.severity == severity, check
    assert check.fix, f"a failing check must say how to fix it: {check}"


# -- the whole picture -----------------------------------------------------------------


@pytest.mark.usefixtures("listening")
def test_a_good_host_passes_every_check(good: Config, host: Path) -> None:
    checks = run(good, host)
    assert list(checks) == [
        "config",
        "ffprobe",
        "probe_workers",
        "state_dir",
        "state_dir.fsync",
        "free_space",
        "signing_key",
        "group",
        "access",
        "systemd_unit",
        "udev_rules",
        "clock",
        "clock.sync",
        "mount_backend",
        "block_devices",
        "runtime_dir",
        "daemon",
        "replication",
        "replication.unit",
        "anchor",
    ]
    bad = [c for c in checks.values() if not c.ok]
    assert bad == []
    assert all(c.severity == "info" and c.fix == "" for c in checks.values())
    assert doctor.exit_code(list(checks.values())) == 0
    assert checks["config"].detail == "/etc/dockd/dockd.toml: parsed"
    assert (
        checks["ffprobe"].detail
        == "ffprobe: ffprobe version 5.1 Copyright (c) the FFmpeg developers"
    )


def test_fresh_install_warns_but_does_not_fail(tmp_path: Path, host: Path) -> None:
    """Before the first start nothing exists yet: warnings and info, exit 0."""
    config = dataclasses.replace(
        Config(),
        state_dir=tmp_path / "var/lib/dockd",
        ingest=IngestConfig(min_free_bytes=1),
        daemon=DaemonConfig(runtime_dir=tmp_path / "run/dockd", socket_group=EXISTING_GROUP),
    )
    checks = run(config, host)
    failed(checks["state_dir"], "warning")
    failed(checks["state_dir.fsync"], "warning")
    failed(checks["signing_key"], "warning")
    assert checks["free_space"].ok
    assert str(tmp_path) in checks["free_space"].detail  # nearest existing ancestor
    assert checks["runtime_dir"].ok
    assert not checks["daemon"].ok and checks["daemon"].severity == "info"
    assert doctor.exit_code(list(checks.values())) == 0


# -- one check at a time ---------------------------------------------------------------


def test_config_path_reported(good: Config, host: Path) -> None:
    checks = doctor.run_checks(
        good, clock=FixedClock(NOW), root=host, run=FakeRunner(GOOD_RUNNER), mount_check=no_problems
    )
    assert checks[0].name == "config" and "/etc/dockd/dockd.toml" in checks[0].detail


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_real_ffprobe_runs(good: Config) -> None:
    check = doctor.check_ffprobe(good, doctor.run_command)
    assert check.ok and "ffprobe version" in check.detail


def test_missing_ffprobe_is_an_error(good: Config, tmp_path: Path) -> None:
    config = dataclasses.replace(good, ingest=IngestConfig(ffprobe=str(tmp_path / "nope")))
    check = doctor.check_ffprobe(config, doctor.run_command)
    failed(check, "error")
    assert "(127)" in check.detail and "apt-get install ffmpeg" in check.fix


def test_hanging_ffprobe_times_out(good: Config, tmp_path: Path) -> None:
    script = tmp_path / "ffprobe"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    config = dataclasses.replace(
        good, ingest=IngestConfig(ffprobe=str(script), ffprobe_timeout=0.3)
    )
    check = doctor.check_ffprobe(config, doctor.run_command)
    failed(check, "error")
    assert "(124)" in check.detail and "no answer within 0.3 s" in check.detail


def test_failing_ffprobe_reports_its_output(good: Config, tmp_path: Path) -> None:
    script = tmp_path / "ffprobe"
    script.write_text("#!/bin/sh\necho 'libavcodec.so.59: cannot open' >&2\nexit 1\n")
    script.chmod(0o755)
    config = dataclasses.replace(good, ingest=IngestConfig(ffprobe=str(script)))
    check = doctor.check_ffprobe(config, doctor.run_command)
    failed(check, "error")
    assert "(1): libavcodec.so.59: cannot open" in check.detail


def test_probe_workers_run_ffprobes_libraries(good: Config) -> None:
    check = doctor.check_probe_workers(good)
    assert check.ok and "python3-av on ffprobe's libraries" in check.detail, check


def test_no_probe_workers_is_a_warning(good: Config) -> None:
    # dockd's own virtualenv has no av: a Python without it cannot serve.
    config = dataclasses.replace(good, ingest=IngestConfig(probe_python=sys.executable))
    check = doctor.check_probe_workers(config)
    failed(check, "warning")
    assert "cannot import av" in check.detail and "python3-av" in check.fix
    off = dataclasses.replace(good, ingest=IngestConfig(probe_python=""))
    assert doctor.check_probe_workers(off).ok


def test_state_dir_not_a_directory(good: Config, tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    config = good.with_state_dir(file)
    failed(doctor.check_state_dir(config), "error")
    failed(doctor.check_fsync(config), "warning")


def test_state_dir_open_to_others_warns(good: Config) -> None:
    """R6: the store is readable only by the service."""
    good.state_dir.chmod(0o755)
    check = doctor.check_state_dir(good)
    failed(check, "warning")
    assert "0755" in check.detail and check.fix == f"chmod 0700 {good.state_dir}"


def test_fsync_really_runs(good: Config) -> None:
    check = doctor.check_fsync(good)
    assert check.ok, check
    assert list(good.state_dir.glob(".doctor-*")) == []  # the probe cleans up


def test_fsync_where_files_cannot_be_made_is_an_error(good: Config) -> None:
    check = doctor.check_fsync(good.with_state_dir(Path("/proc/self")))
    failed(check, "error")
    assert "local filesystem" in check.fix


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_free_space_thresholds(good: Config) -> None:
    free = _free(good.state_dir)
    huge = dataclasses.replace(good, ingest=IngestConfig(min_free_bytes=free * 4))
    failed(doctor.check_free_space(huge), "error")
    # Under 10x the floor: free/5 as the floor gives 2x headroom for other writers.
    tight = dataclasses.replace(good, ingest=IngestConfig(min_free_bytes=free // 5))
    check = doctor.check_free_space(tight)
    failed(check, "warning")
    assert "under 10x" in check.detail
    assert doctor.check_free_space(good).ok


def test_signing_key_states(good: Config) -> None:
    key = good.state_dir / "keys" / "checkpoint.key"
    assert doctor.key_path(good) == key
    assert doctor.check_signing_key(good).ok

    key.chmod(0o644)
    check = doctor.check_signing_key(good)
    failed(check, "error")
    assert "readable by others" in check.detail

    key.chmod(0o600)
    key.write_text("not a key")
    failed(doctor.check_signing_key(good), "error")

    key.unlink()
    check = doctor.check_signing_key(good)
    failed(check, "error")  # the catalog exists: the key was lost
    assert "restore the key" in check.fix

    (good.state_dir / "catalog.sqlite").unlink()
    failed(doctor.check_signing_key(good), "warning")  # first start makes it


def test_signing_key_path_from_config(good: Config, tmp_path: Path) -> None:
    """Same rule as Service._key_path: integrity.key_path wins when set."""
    elsewhere = tmp_path / "hsm" / "dock.key"
    write_new_key(elsewhere)
    config = dataclasses.replace(good, integrity=IntegrityConfig(key_path=str(elsewhere)))
    assert doctor.key_path(config) == elsewhere
    check = doctor.check_signing_key(config)
    assert check.ok and str(elsewhere) in check.detail


def test_group_checks(good: Config, host: Path) -> None:
    assert doctor.unit_group(host) == EXISTING_GROUP
    assert doctor.check_group(good, host).ok

    other = dataclasses.replace(
        good, daemon=DaemonConfig(runtime_dir=good.daemon.runtime_dir, socket_group="no-such-grp")
    )
    check = doctor.check_group(other, host)
    failed(check, "error")
    assert check.detail == "group no-such-grp does not exist: the socket has no group"
    assert check.fix.startswith("groupadd --system no-such-grp")

    # The unit's own group missing: it cannot even start.
    dropin = host / "etc/systemd/system/dockd.service.d/group.conf"
    dropin.parent.mkdir()
    dropin.write_text("[Service]\nGroup=no-such-grp\n")
    assert doctor.unit_group(host) == "no-such-grp"
    check = doctor.check_group(good, host)
    failed(check, "error")
    assert check.detail.endswith("and the unit cannot start")

    # Both exist but differ: no CAP_CHOWN, so the socket cannot be handed over.
    dropin.write_text(f"[Service]\nGroup={EXISTING_GROUP}\n")
    nobody = grp.getgrgid(65534).gr_name
    mismatch = dataclasses.replace(
        good, daemon=DaemonConfig(runtime_dir=good.daemon.runtime_dir, socket_group=nobody)
    )
    check = doctor.check_group(mismatch, host)
    failed(check, "warning")
    assert f"Group={nobody}" in check.fix

    # No unit installed: only the socket group is checked.
    assert doctor.check_group(good, host.parent / "bare").ok


def test_unit_found_in_any_unit_dir(host: Path) -> None:
    assert doctor.check_unit(host).detail == str(host / "etc/systemd/system/dockd.service")
    (host / "etc/systemd/system/dockd.service").unlink()
    failed(doctor.check_unit(host), "warning")
    packaged = host / "lib/systemd/system/dockd.service"
    packaged.parent.mkdir(parents=True)
    packaged.write_text("[Service]\n")
    assert doctor.check_unit(host).detail == str(packaged)


def test_rules_missing_edited_or_packaged(host: Path) -> None:
    installed = host / "etc/udev/rules.d/70-dockd.rules"
    assert doctor.check_rules(host).ok
    installed.write_text('SUBSYSTEM=="block", ENV{UDISKS_IGNORE}="1"\n')
    failed(doctor.check_rules(host), "warning")
    installed.unlink()
    check = doctor.check_rules(host)
    failed(check, "error")
    assert "automount" in check.detail
    packaged = host / "usr/lib/udev/rules.d/70-dockd.rules"
    packaged.parent.mkdir(parents=True)
    shutil.copy(REPO / "udev-rules/70-dockd.rules", packaged)
    assert doctor.check_rules(host).detail == str(packaged)


def test_reset_clock_is_an_error() -> None:
    check = doctor.check_clock_plausible(FixedClock(datetime(2000, 1, 1, tzinfo=UTC)))
    failed(check, "error")
    assert "2000-01-01T00:00:00Z" in check.detail
    assert doctor.check_clock_plausible(FixedClock(NOW)).ok


def test_clock_sync(host: Path, tmp_path: Path) -> None:
    synced = FakeRunner({"timedatectl": (0, "yes")})
    assert doctor.check_clock_sync(host, synced).ok
    assert synced.calls == [["timedatectl", "show", "-p", "NTPSynchronized", "--value"]]
    failed(doctor.check_clock_sync(host, FakeRunner({"timedatectl": (0, "no")})), "warning")
    broken = FakeRunner({"timedatectl": (1, "Failed to connect to bus")})
    check = doctor.check_clock_sync(host, broken)
    failed(check, "warning")
    assert "Failed to connect to bus" in check.detail
    # Without systemd, timedatectl is not even asked.
    unasked = FakeRunner({})
    check = doctor.check_clock_sync(tmp_path / "bare", unasked)
    failed(check, "warning")
    assert check.detail.startswith("unknown") and unasked.calls == []


def test_mount_backend_problems_are_errors(good: Config) -> None:
    check = doctor.check_mount_backend(good, lambda backend: [f"{backend}: no vfat in kernel"])
    failed(check, "error")
    assert check.detail == "kernel: kernel: no vfat in kernel"
    assert "daemon.mount_backend = 'fuse'" in check.fix

    def crashes(backend: str) -> list[str]:
        raise RuntimeError("probe broke")

    failed(doctor.check_mount_backend(good, crashes), "error")
    assert doctor.check_mount_backend(good, no_problems).ok


def test_real_mount_check_keeps_its_contract() -> None:
    """dockd.devices.mount.backend_available(backend) -> list of problem sentences."""
    for backend in ("kernel", "fuse"):
        problems = doctor.real_mount_check(backend)
        assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount"):
        assert doctor.real_mount_check("fuse")


def test_block_devices_need_sd_mod(host: Path) -> None:
    assert doctor.check_block_devices(host).ok
    # sd listed only among the character devices does not count.
    without = PROC_DEVICES.replace("  8 sd\n", "").replace(" 65 sd\n", "")
    without = without.replace("Character devices:\n", "Character devices:\n  8 sd\n")
    (host / "proc/devices").write_text(without)
    failed(doctor.check_block_devices(host), "error")
    assert "modprobe sd_mod" in doctor.check_block_devices(host).fix
    (host / "proc/devices").unlink()
    failed(doctor.check_block_devices(host), "warning")


def test_block_majors_parses_this_host() -> None:
    assert "loop" in doctor.block_majors(Path("/proc/devices").read_text())


def test_runtime_dir_states(good: Config, tmp_path: Path) -> None:
    assert doctor.check_runtime_dir(good).ok
    not_dir = tmp_path / "run-file"
    not_dir.write_text("")
    config = dataclasses.replace(good, daemon=DaemonConfig(runtime_dir=not_dir))
    failed(doctor.check_runtime_dir(config), "error")
    absent = dataclasses.replace(good, daemon=DaemonConfig(runtime_dir=tmp_path / "gone"))
    assert doctor.check_runtime_dir(absent).ok


def test_daemon_socket_is_info_only(good: Config) -> None:
    check = doctor.check_daemon_socket(good)
    assert not check.ok and check.severity == "info"
    (good.daemon.runtime_dir / "dockd.sock").write_text("")  # a file, not a socket
    assert not doctor.check_daemon_socket(good).ok
    assert doctor.exit_code([check]) == 0


def test_a_crashing_check_is_reported_not_raised(good: Config, host: Path) -> None:
    def explodes(argv: Sequence[str], timeout: float) -> tuple[int, str]:
        raise RuntimeError("runner bug")

    checks = {
        c.name: c
        for c in doctor.run_checks(
            good, clock=FixedClock(NOW), root=host, run=explodes, mount_check=no_problems
        )
    }
    failed(checks["ffprobe"], "error")
    assert "runner bug" in checks["ffprobe"].detail
    assert checks["ffprobe"].fix == "report this as a bug"
    assert checks["state_dir"].ok  # the others still ran
    assert doctor.exit_code(list(checks.values())) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_without_root_the_key_check_says_so(good: Config, tmp_path: Path, host: Path) -> None:
    """A 0700 state directory hides the key from others: a finding, not a traceback."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            checks = {
                c.name: c
                for c in doctor.run_checks(
                    good,
                    clock=FixedClock(NOW),
                    root=host,
                    run=FakeRunner(GOOD_RUNNER),
                    mount_check=no_problems,
                )
            }
            key = checks["signing_key"]
            ok = not key.ok and key.fix == "run dockd doctor as root" and not checks["state_dir"].ok
            code = 0 if ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# -- presentation ------------------------------------------------------------------------


SAMPLE = [
    Check("ffprobe", True, "info", "ffprobe: ffprobe version 5.1"),
    Check("clock.sync", False, "warning", "NTP not synchronised", "timedatectl set-ntp true"),
    Check("udev_rules", False, "error", "70-dockd.rules not installed", "make install"),
    Check("daemon", False, "info", "socket absent", "systemctl enable --now dockd"),
]


def test_render_text() -> None:
    assert doctor.render_text(SAMPLE) == (
        "[ ok ] ffprobe     ffprobe: ffprobe version 5.1\n"
        "[WARN] clock.sync  NTP not synchronised\n"
        "                   fix: timedatectl set-ntp true\n"
        "[FAIL] udev_rules  70-dockd.rules not installed\n"
        "                   fix: make install\n"
        "[info] daemon      socket absent\n"
        "                   fix: systemctl enable --now dockd\n"
        "doctor: 1 ok, 1 warning(s), 1 error(s)\n"
    )


def test_exit_code_and_json() -> None:
    assert doctor.exit_code(SAMPLE) == 1
    assert doctor.exit_code([c for c in SAMPLE if c.severity != "error"]) == 0
    report = doctor.report_json(SAMPLE)
    assert report["ok"] is False
    assert report["checks"][1] == {
        "name": "clock.sync",
        "ok": False,
        "severity": "warning",
        "detail": "NTP not synchronised",
        "fix": "timedatectl set-ntp true",
    }


def test_state_dir_mode_reported(good: Config) -> None:
    check = doctor.check_state_dir(good)
    assert check.ok and check.detail.endswith(f"mode {stat.S_IMODE(0o700):04o}")


def test_a_role_without_a_group_is_said(good: Config) -> None:
    """Nobody can hold a role whose groups do not exist: no supervisor, no approvals."""
    none = dataclasses.replace(good, access=AccessConfig(supervisor=("no-such-group-x",)))
    check = doctor.check_access_groups(none)
    failed(check, "warning")
    assert "supervisor" in check.detail and "nobody can view or copy" in check.detail
    one = dataclasses.replace(
        good,
        access=AccessConfig(
            **{r: (EXISTING_GROUP,) for r in (*ROLES, CONFIDENTIAL) if r != "auditor"},
            auditor=("12345",),  # a number is a gid, whether or not it has a name
        ),
    )
    assert doctor.check_access_groups(one).ok


def test_no_pinned_key_and_no_bucket_is_warned(good: Config) -> None:
    """The log checked only against itself: root could cut, empty or re-sign it."""
    bare = dataclasses.replace(good, integrity=IntegrityConfig())
    anchor = doctor.doctor_replication.check_anchor(bare)
    assert (anchor.ok, anchor.severity) == (False, "warning")
    assert "integrity.trusted_keys" in anchor.fix and "[replicate]" in anchor.fix
    assert doctor.doctor_replication.check_anchor(good).ok
    off = doctor.doctor_replication.check_replication(bare, FixedClock(datetime.now(UTC)))
    assert off.ok and "off" in off.detail


def test_with_a_bucket_the_shipped_unit_needs_the_replicate_drop_in(
    good: Config, host: Path
) -> None:
    """The unit allows IP on the loopback only (IPAddressDeny=any, IPAddressAllow=
    localhost): a bucket elsewhere is unreachable until the drop-in of packaging/ lets
    its address in."""
    from dockd.config import ReplicateConfig

    check = doctor.doctor_replication.check_unit_network
    local = dataclasses.replace(
        good, replicate=ReplicateConfig(endpoint="http://127.0.0.1:7480", bucket="evidence")
    )
    assert check(good, host).ok  # no bucket: no network needed
    assert check(local, host).ok  # a bucket on this host: the loopback is allowed
    replicating = dataclasses.replace(
        local, replicate=dataclasses.replace(local.replicate, endpoint="http://192.0.2.10:7480")
    )
    closed = check(replicating, host)
    assert (closed.ok, closed.severity) == (False, "error")
    assert "IPAddressDeny" in closed.detail  # IP on the loopback only
    assert "dockd-replicate.conf.example" in closed.fix
    drop_in = host / "etc/systemd/system/dockd.service.d/replicate.conf"
    drop_in.parent.mkdir(parents=True)
    shipped = (REPO / "packaging/dockd-replicate.conf.example").read_text()
    # As the example ships (localhost and the documentation address 192.0.2.10).
    drop_in.write_text(shipped)
    assert check(replicating, host).ok, check(replicating, host)
    elsewhere = dataclasses.replace(
        replicating,
        replicate=dataclasses.replace(replicating.replicate, endpoint="http://192.0.2.99:7480"),
    )
    denied = check(elsewhere, host)
    assert not denied.ok and "192.0.2.99" in denied.detail and "IPAddressAllow" in denied.fix
    drop_in.write_text(shipped.replace("192.0.2.10", "192.0.2.0/24"))
    assert check(elsewhere, host).ok


def test_the_daemon_check_asks_the_daemon_itself(good: Config) -> None:
    # A socket file nobody listens on (a crash's leftover), then a daemon that answers.
    import socket as sockets

    from dockd.runner.api import bind_unix
    from dockd.runner.front import HttpServer
    from dockd.runner.screen.app import make_app

    path = good.daemon.runtime_dir / "dockd.sock"
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()
    check = doctor.check_daemon_socket(good)
    assert not check.ok and check.severity == "warning" and "nobody answers" in check.detail
    reasons: list[str] = ["replication: the bucket refuses uploads"]
    app = make_app(lambda: {"slots": []}, lambda: (not reasons, list(reasons)), FixedClock(NOW))
    server = HttpServer(app, [bind_unix(path, group="no-such-group-here")])
    server.start()
    try:
        check = doctor.check_daemon_socket(good)
        assert not check.ok and check.severity == "warning"
        assert "not ready: replication: the bucket refuses uploads" in check.detail
        reasons.clear()
        assert doctor.check_daemon_socket(good).ok
    finally:
        server.stop()
