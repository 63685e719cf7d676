"""The daemon (`dockd run`): sd_notify, the socket, the drop folder, signals, the scheduler.

Most tests run the real daemon as its own process (`python -m dockd --config
CFG run --no-udev`) with its runtime directory, state directory and drop
folder in pytest's temporary directory, and talk to it the way an operator
does: `dockd status`, `dockd device …`, signals. Its log is JSON lines on
stderr (log.format = "json"), read back from a file.

The in-process tests at the end construct `Daemon(config, udev=False)`
without `run()` and drive its parts directly: the deadline estimate (rule
R1), the EDF queue, the scheduled jobs and the socket operations.
"""

from __future__ import annotations

import dataclasses
import heapq
import io
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from dockd import logs
from dockd.access.roles import Identity
from dockd.clock import FixedClock, SystemClock, isoformat_utc
from dockd.config import (
    AccessConfig,
    Config,
    DaemonConfig,
    IntegrityConfig,
    ProfileConfig,
    load_config,
)
from dockd.demo import gat947_name
from dockd.devices.profiles import make_profile
from dockd.errors import DockdError, UsageError
from dockd.runner.client import DaemonUnavailable, request
from dockd.runner.daemon import Daemon
from dockd.runner.session import run_session
from dockd.runner.slots import Notifier, SlotState, _Job, _SlotProgress, estimate_deadline
from dockd.service import Service, StateBusyError
from tests.conftest import NOW, put, recent
from tests.volumes import REPO

SERIAL = "CAM0007"
ZONE = "Asia/Shanghai"
# Environment variables that would change what the daemon under test does.
_FOREIGN_ENV = (
    "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "DOCKD_STATE_DIR", "LISTEN_FDS", "SUDO_USER",
)  # fmt: skip


def clip_name(
    minute: int, seq: int, serial: str = SERIAL, first: datetime = NOW - timedelta(hours=8)
) -> str:
    """A GA/T 947 name for a clip recorded `minute` minutes after `first`: by default
    clip_bank's times (for the in-process daemon's FixedClock); tests of the real
    daemon pass `recent(now_utc)`, as recent_clips are recorded."""
    return gat947_name("012345", serial, first + timedelta(minutes=minute), seq, ZONE)


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    context: Callable[[], str] | None = None,
    interval: float = 0.1,
) -> Any:
    """Poll `condition` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}\n{context() if context else ''}"
            )
        time.sleep(interval)


# -- a daemon in its own process -----------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return json.dumps(str(value))
    return json.dumps(value)


@dataclass
class Dockd:
    """One test's dockd: its config file, directories and (at most) one daemon process."""

    tmp: Path
    state: Path
    runtime: Path
    drop: Path
    config: Path
    log_level: str = "info"
    daemon: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    stderr_path: Path | None = None

    @property
    def socket(self) -> Path:
        return self.runtime / "dockd.sock"

    def write_config(self, **changes: Any) -> None:
        """(Re)write the config file; `changes` override [daemon] keys, state_dir, level."""
        state = changes.pop("state_dir", self.state)
        level = changes.pop("log_level", self.log_level)
        daemon = {
            "runtime_dir": self.runtime,
            "drop_dir": self.drop,
            "drop_settle_seconds": 0.5,
            "mount_backend": "fuse",
            **self.daemon,
            **changes,
        }
        lines = [
            *([f"state_dir = {toml_value(state)}"] if state is not None else []),
            "[ingest]",
            "min_free_bytes = 0",
            "change_retry_delay = 0",
            "[log]",
            f"level = {toml_value(level)}",
            'format = "json"',
            "[daemon]",
            *(f"{k} = {toml_value(v)}" for k, v in daemon.items()),
        ]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def load(self) -> Config:
        return load_config(self.config)

    # -- the process ---------------------------------------------------------------------

    def start(
        self,
        *,
        env: dict[str, str] | None = None,
        verbose: bool = True,
        global_args: tuple[str, ...] = (),
        wait: bool = True,
    ) -> subprocess.Popen[bytes]:
        assert self.proc is None, "one daemon per test helper"
        argv = [sys.executable, "-m", "dockd", "--config", str(self.config), *global_args]
        argv += [*(["-v"] if verbose else []), "run", "--no-udev"]
        child_env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        child_env.update(env or {})
        self.stderr_path = self.tmp / f"daemon-{time.monotonic_ns()}.log"
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=stderr, cwd=REPO, env=child_env
            )
        if wait:
            wait_for(self.answers, 30, "the daemon to answer on its socket", self.logs)
        return self.proc

    def answers(self) -> bool:
        """True once the daemon answers `status` on its socket (fails if it died)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited {self.proc.returncode}\n{self.logs()}")
        try:
            request(self.socket, "status", timeout=5)
        except DaemonUnavailable:
            return False
        return True

    def logs(self) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return "(no daemon log)"
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The daemon's JSON log lines (other lines, such as tracebacks, are skipped)."""
        found = []
        for line in self.logs().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                found.append(event)
        return found

    def wait_event(self, name: str, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
        return wait_for(  # type: ignore[no-any-return]
            lambda: (events := self.events(name)) and len(events) >= count and events,
            timeout,
            f"{count} {name} event(s) from the daemon",
            self.logs,
        )

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, float]:
        """Send `sig`, wait for the exit; return (exit code, seconds it took)."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        took = time.monotonic() - began
        self.proc = None
        return code, took

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.proc = None

    # -- the CLI, as an operator runs it -------------------------------------------------

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        child_env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
        child_env.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "dockd", "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=child_env,
            timeout=timeout,
        )

    def cli_json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        proc = self.cli(*args, "--json", env=env)
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr}"
        return json.loads(proc.stdout)

    def status(self) -> dict[str, Any]:
        """`status` over the socket (what `dockd status --json` asks), without a process."""
        result: dict[str, Any] = request(self.socket, "status", timeout=10)
        return result

    def slot(self, key: str) -> dict[str, Any] | None:
        return next((s for s in self.status()["slots"] if s["slot"] == key), None)


@pytest.fixture
def dockd(tmp_path: Path) -> Iterator[Dockd]:
    drop = tmp_path / "drop"
    drop.mkdir()
    d = Dockd(
        tmp=tmp_path,
        state=tmp_path / "state",
        runtime=tmp_path / "run",
        drop=drop,
        config=tmp_path / "dockd.toml",
    )
    d.write_config()
    try:
        yield d
    finally:
        d.kill()


def ingest_directly(d: Dockd, clips: list[tuple[str, Path]]) -> list[int]:
    """Ingest clips as a docking of SERIAL without the daemon; return the recording ids."""
    camera = d.tmp / "camera"
    for name, clip in clips:
        put(camera, f"DCIM/100MEDIA/{name}", clip)
    config = d.load()
    with Service(config, SystemClock()) as service:
        report = run_session(
            service, camera, SERIAL, make_profile("gat947", config.profiles), wipe=False
        )
    return [o.recording.id for o in report.outcomes]


def log_entry(d: Dockd, seq: int) -> dict[str, Any]:
    """One evidence-log entry, read without the lock (as `dockd list` reads)."""
    with Service(d.load(), SystemClock(), write=False) as service:
        raw = service.log_entry(seq)
    assert raw is not None, f"no log entry {seq}"
    entry: dict[str, Any] = json.loads(raw)
    return entry


# -- sd_notify ---------------------------------------------------------------------------------


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket that keeps every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            at = time.monotonic()
            for line in data.decode("utf-8", "replace").splitlines():
                self.messages.append((at, line))

    def wait(self, message: str, timeout: float, context: Callable[[], str]) -> float:
        """Receive until `message` arrives; return when it did."""

        def arrived() -> float | None:
            self.pump(0.1)
            return next((at for at, m in self.messages if m == message), None)

        return wait_for(arrived, timeout, f"{message!r} on NOTIFY_SOCKET", context, interval=0)  # type: ignore[no-any-return]

    def texts(self) -> list[str]:
        return [m for _, m in self.messages]

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_ready_status_watchdog_and_stopping(dockd: Dockd) -> None:
    """systemd Type=notify: READY=1 after start-up, STATUS=, WATCHDOG=1 every WATCHDOG_USEC/2,
    STOPPING=1 on SIGTERM; exit 0 and the socket removed (no stale socket for the next start)."""
    listener = NotifyListener(dockd.tmp / "notify.sock")
    try:
        # No WATCHDOG_PID: systemd sets it only when the pid is known; the
        # daemon must then take the pings as asked of itself.
        proc = dockd.start(
            env={"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"}, wait=False
        )
        ready_at = listener.wait("READY=1", 30, dockd.logs)
        listener.pump(3.0)
        texts = listener.texts()
        assert "STATUS=starting: recovering state" in texts
        assert texts.index("STATUS=starting: recovering state") < texts.index("READY=1")
        assert "STATUS=idle: waiting for cameras" in texts
        pings = [at for at, m in listener.messages if m == "WATCHDOG=1" and at >= ready_at]
        assert len(pings) >= 2, texts
        assert dockd.socket.exists()

        code, _ = dockd.stop(signal.SIGTERM)
        listener.pump(0.5)
        texts = listener.texts()
        assert code == 0, dockd.logs()
        assert "STOPPING=1" in texts
        assert texts.index("STOPPING=1") > texts.index("READY=1")
        assert "STATUS=stopping: finishing the current files" in texts
        assert not dockd.socket.exists(), "the socket must go with the daemon"
        assert proc.returncode == 0
        assert [e["event"] for e in dockd.events() if e["event"].startswith("daemon.")][-1] == (
            "daemon.stopped"
        )
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("1000000", None, 0.5),  # WATCHDOG_PID unset: the pings are ours
        ("1000000", "self", 0.5),
        ("1000000", "1", None),  # meant for another process
        ("60000000", None, 30.0),
        (None, None, None),  # no watchdog asked for
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert Notifier.watchdog_interval() == expected


def test_notifier_does_nothing_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    notifier("READY=1")  # not started by systemd: silently nothing


# -- dockd status ------------------------------------------------------------------------------


def test_status_json_against_the_running_daemon(dockd: Dockd) -> None:
    proc = dockd.start()
    data = dockd.cli_json("status")
    assert data["running"] is True
    d = data["daemon"]
    assert d["pid"] == proc.pid
    assert d["workers"] == DaemonConfig().workers and d["waiting"] == 0
    assert d["mount_backend"] == "fuse" and d["stopping"] is False
    assert d["version"]
    started = datetime.fromisoformat(d["started_at"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - started).total_seconds()) < 300
    assert data["slots"] == [] and data["recent"] == []
    text = dockd.cli("status")
    assert text.returncode == 0, text.stderr
    assert (
        f"(pid {proc.pid})" in text.stdout and f"{DaemonConfig().workers} worker(s)" in text.stdout
    )


def test_status_without_a_daemon_exits_1(dockd: Dockd) -> None:
    proc = dockd.cli("status", "--json")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert data["running"] is False
    assert "no dockd daemon" in data["error"]
    text = dockd.cli("status")
    assert text.returncode == 1
    assert "dockd is not running" in text.stderr


def test_stale_socket_of_a_killed_daemon(dockd: Dockd) -> None:
    """SIGKILL leaves the socket file: `status` still says "not running"; a new daemon
    replaces the stale socket and serves."""
    dockd.start()
    dockd.kill()
    assert dockd.socket.exists()
    proc = dockd.cli("status", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["running"] is False
    new = dockd.start()
    assert dockd.status()["daemon"]["pid"] == new.pid


# -- the drop folder -------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["while running", "before start"])
def test_drop_folder_batch_is_ingested_by_the_daemon(
    dockd: Dockd, recent_clips: list[Path], now_utc: datetime, when: str
) -> None:
    """A card copied into the drop folder is ingested, attributed to the sidecar's serial,
    and the emptied batch removed (DESIGN: drop-folder watcher for manual imports). A batch
    left from before a restart is found at start-up."""
    if when == "while running":
        dockd.start()
    incoming = dockd.drop / ".incoming-batch1"  # hidden while it is copied
    put(incoming, f"DCIM/{clip_name(0, 1, first=recent(now_utc))}", recent_clips[0])
    (incoming / "dockd-import.json").write_text(json.dumps({"serial": SERIAL}), encoding="utf-8")
    batch = dockd.drop / "batch1"
    incoming.rename(batch)
    if when == "before start":
        dockd.start()

    def done() -> dict[str, Any] | None:
        slot = dockd.slot("drop:batch1")
        assert slot is None or slot["state"] != "error", slot
        return slot if slot is not None and slot["state"] == "done" else None

    slot = wait_for(done, 60, "slot drop:batch1 to reach done", dockd.logs, interval=0.2)
    assert slot["serial"] == SERIAL and slot["profile"] == "gat947"
    assert slot["counts"]["ingested"] == 1 and slot["counts"]["wiped"] == 1
    assert slot["source"] == str(batch)
    # What the operator sees: the CLI's status, and the catalog read while the daemon runs.
    status = dockd.cli_json("status")
    [shown] = [s for s in status["slots"] if s["slot"] == "drop:batch1"]
    assert shown["state"] == "done"
    assert status["recent"][0]["serial"] == SERIAL and status["recent"][0]["state"] == "done"
    [rec] = dockd.cli_json("list")
    assert rec["device_serial"] == SERIAL
    assert rec["source_path"] == f"DCIM/{clip_name(0, 1, first=recent(now_utc))}"
    assert rec["size"] == recent_clips[0].stat().st_size
    assert not batch.exists(), "an emptied batch is removed"
    assert list(dockd.drop.iterdir()) == []
    assert dockd.status()["daemon"]["waiting"] == 0


# -- changes through the socket -----------------------------------------------------------------


def test_log_export_asks_the_daemon_to_sign_what_it_has_not_yet(
    dockd: Dockd, recent_clips: list[Path], now_utc: datetime
) -> None:
    """A tag through the daemon grows the log between its periodic checkpoints; an export
    right after it asks the daemon (which holds the key and the lock) to sign one."""
    [rec_id] = ingest_directly(dockd, [(clip_name(0, 1, first=recent(now_utc)), recent_clips[0])])
    dockd.start()
    dockd.cli_json("tag", str(rec_id), "--cause", "占道经营")
    with Service(dockd.load(), SystemClock(), write=False) as service:
        assert service.log_grew(), "the daemon signs on its own schedule, not per tag"
    out = dockd.tmp / "export"
    exported = dockd.cli("log", "export", str(out))
    assert exported.returncode == 0, exported.stderr
    entries = (out / "entries.jsonl").read_bytes().splitlines()
    assert json.loads(entries[-1])["kind"] == "recording.tagged"
    assert json.loads((out / "proofs.json").read_text())["tree_size"] == len(entries)
    with Service(dockd.load(), SystemClock(), write=False) as service:
        assert not service.log_grew()
    assert dockd.answers()


def test_device_assign_goes_through_the_daemon(
    dockd: Dockd, recent_clips: list[Path], now_utc: datetime
) -> None:
    """While the daemon holds the state directory, `dockd device assign` asks it over the
    socket: the change is made by the daemon, with the socket peer as actor (SO_PEERCRED),
    and the recording already ingested is re-attributed (R2)."""
    start = recent(now_utc)
    [rec_id] = ingest_directly(dockd, [(clip_name(0, 1, first=start), recent_clips[0])])
    dockd.start()
    # The daemon holds the lock: a second writer could not open the state directory.
    with pytest.raises(StateBusyError) as busy:
        Service(dockd.load(), SystemClock(), lock_wait_s=0.2)
    assert busy.value.exit_code == 4

    # Through the daemon as through local_actor(): "root(0) via sudo by alice".
    issued = isoformat_utc(start - timedelta(days=1))  # covers the recording
    began = time.monotonic()
    result = dockd.cli_json(
        "device", "assign", SERIAL, "--officer", "054321", "--unit", "Traffic 2",
        "--number", "BWC-17", "--from", issued, "--reason", "issued",
        env={"SUDO_USER": "alice"},
    )  # fmt: skip
    took = time.monotonic() - began
    assert took < 25, f"{took:.1f} s: waited for the lock instead of asking the daemon"
    assignment = result["assignment"]
    assert assignment["officer"] == "054321" and assignment["unit"] == "Traffic 2"
    assert assignment["valid_from"] == issued
    assert result["reattributed"] == [rec_id]
    entry = log_entry(dockd, assignment["log_seq"])
    assert entry["kind"] == "device.assigned"
    me = pwd.getpwuid(os.getuid()).pw_name
    # The uid is the socket's word; root's client adds the person behind sudo (only
    # root's is taken: tests/runner/test_api.py).
    login = " via sudo by alice" if os.getuid() == 0 else ""
    assert entry["data"]["by"] == f"{me}({os.getuid()}){login}", entry
    assert entry["data"]["reason"] == "issued"
    # The daemon's own log has the change (the CLI process logs nothing at info).
    [logged] = dockd.wait_event("device.assigned")
    assert logged["serial"] == SERIAL and logged["reattributed"] == 1

    [device] = dockd.cli_json("device", "list")
    assert device["serial"] == SERIAL and device["recordings"] == 1
    assert device["assigned_to"]["officer"] == "054321"
    assert device["assigned_to"]["device_number"] == "BWC-17"
    [rec] = dockd.cli_json("list")
    assert (rec["officer"], rec["unit"], rec["device_number"]) == ("054321", "Traffic 2", "BWC-17")
    assert "unassigned_device" not in rec["flags"]

    # A refusal made by the daemon comes back with its message and exit code.
    bad = dockd.cli(
        "device", "assign", SERIAL, "--officer", "054321", "--unit", "Traffic 2",
        "--from", "2026-11-25", "--to", "2026-11-24",
    )  # fmt: skip
    # A usage error (2), its field spelled as the CLI's option though the daemon raised it.
    assert bad.returncode == 2, bad.stderr
    assert "must be after its start" in bad.stderr and "(--to)" in bad.stderr
    assert dockd.answers()


# -- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_while_idle_exits_0_quickly(dockd: Dockd, sig: signal.Signals) -> None:
    dockd.start()
    code, took = dockd.stop(sig)
    print(f"{sig.name}: stopped in {took:.2f} s")
    assert code == 0, dockd.logs()
    assert took < 30
    assert not dockd.socket.exists()
    [stopping] = dockd.events("daemon.stopping")
    assert stopping["signal"] == sig.name
    assert dockd.events("daemon.stopped")
    # The lock is released: a direct writer gets the state directory at once.
    with Service(dockd.load(), SystemClock(), lock_wait_s=0.2):
        pass


def test_sighup_applies_live_settings_and_keeps_fixed_ones(dockd: Dockd) -> None:
    """SIGHUP re-reads the config: the mount back end and intervals change live;
    workers need a restart, which is said, and the old value stays."""
    dockd.start()
    dockd.write_config(mount_backend="kernel", checkpoint_interval_minutes=5, workers=3)
    dockd.send(signal.SIGHUP)
    [reloaded] = dockd.wait_event("daemon.reloaded")
    assert reloaded["needs_restart"] == "daemon.workers"
    assert [e["key"] for e in dockd.events("daemon.reload_needs_restart")] == ["daemon.workers"]
    d = dockd.status()["daemon"]
    assert d["mount_backend"] == "kernel"
    assert d["workers"] == DaemonConfig().workers  # the default it started with

    # Only a log level change: applied, and nothing needs a restart.
    dockd.write_config(mount_backend="kernel", log_level="debug")
    dockd.send(signal.SIGHUP)
    second = dockd.wait_event("daemon.reloaded", count=2)[1]
    assert second["level"] == "info" and second["needs_restart"] == ""
    # `reload` over the socket does what SIGHUP does.
    dockd.write_config(mount_backend="fuse")
    assert request(dockd.socket, "reload") == {"reloading": True}
    dockd.wait_event("daemon.reloaded", count=3)
    assert dockd.status()["daemon"]["mount_backend"] == "fuse"
    code, _ = dockd.stop()
    assert code == 0


def test_sighup_with_an_invalid_config_keeps_running(dockd: Dockd) -> None:
    dockd.start()
    dockd.config.write_text("[daemon]\nworkers = 0\n", encoding="utf-8")
    dockd.send(signal.SIGHUP)
    [failed] = dockd.wait_event("daemon.reload_failed")
    assert "daemon.workers" in failed["reason"]
    assert failed["level"] == "error"
    assert not dockd.events("daemon.reloaded")
    assert dockd.answers()
    assert dockd.status()["daemon"]["mount_backend"] == "fuse"  # the old config stays
    # Not TOML at all: the same.
    dockd.config.write_text("[daemon\n", encoding="utf-8")
    dockd.send(signal.SIGHUP)
    second = dockd.wait_event("daemon.reload_failed", count=2)[1]
    assert "not valid TOML" in second["reason"]
    # Fixed again: the next SIGHUP applies it.
    dockd.write_config(mount_backend="kernel")
    dockd.send(signal.SIGHUP)
    dockd.wait_event("daemon.reloaded")
    assert dockd.status()["daemon"]["mount_backend"] == "kernel"


def test_sighup_refuses_a_new_state_dir(dockd: Dockd) -> None:
    """The state directory (held locked) cannot move under a running daemon."""
    dockd.start()
    elsewhere = dockd.tmp / "other-state"
    dockd.write_config(state_dir=elsewhere, drop_dir=str(dockd.tmp / "other-drop"))
    dockd.send(signal.SIGHUP)
    [reloaded] = dockd.wait_event("daemon.reloaded")
    assert set(reloaded["needs_restart"].split(",")) == {"state_dir", "daemon.drop_dir"}
    keys = {e["key"] for e in dockd.events("daemon.reload_needs_restart")}
    assert keys == {"state_dir", "daemon.drop_dir"}
    # Changes still go to the old state directory, which the daemon still holds.
    result = request(
        dockd.socket, "device.assign", {"serial": SERIAL, "officer": "012345", "unit": "U"}
    )
    assert result["assignment"]["serial"] == SERIAL
    with pytest.raises(StateBusyError):
        Service(dockd.load().with_state_dir(dockd.state), SystemClock(), lock_wait_s=0.2)
    assert not (elsewhere / "catalog.sqlite").exists()


def test_sighup_keeps_the_state_dir_given_on_the_command_line(dockd: Dockd) -> None:
    dockd.write_config(state_dir=None)  # as systemd runs it: the state dir is not in the file
    dockd.start(global_args=("--state-dir", str(dockd.state)))
    dockd.send(signal.SIGHUP)
    [reloaded] = dockd.wait_event("daemon.reloaded")
    assert not dockd.events("daemon.reload_needs_restart")
    assert reloaded["needs_restart"] == ""


def test_daemon_logs_info_events_at_log_level_info(dockd: Dockd) -> None:
    dockd.start(verbose=False)
    dockd.wait_event("daemon.started", timeout=5)


# -- in process: Daemon without run() ------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """structlog to a buffer (JSON lines), not to a stream a CliRunner may have closed."""
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


def logged(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == name]


class RecordingNotifier(Notifier):
    def __init__(self) -> None:
        self.enabled = True
        self.sent: list[str] = []

    def __call__(self, message: str) -> None:
        self.sent.append(message)


@pytest.fixture
def inproc_config(config: Config, tmp_path: Path) -> Config:
    return dataclasses.replace(config, daemon=DaemonConfig(runtime_dir=tmp_path / "run"))


@pytest.fixture
def daemon(inproc_config: Config, clock: FixedClock, log_stream: io.StringIO) -> Iterator[Daemon]:
    config = dataclasses.replace(inproc_config, access=PEOPLE)
    d = Daemon(config, clock=clock, udev=False, notifier=RecordingNotifier())
    service = d.service = Service(config, clock)
    try:
        yield d
    finally:
        if d._scheduler is not None:
            d._scheduler.shutdown(wait=True)
        service.close()


GAT947 = make_profile("gat947", ProfileConfig())


def _names(*names: str, folder: bytes = b"DCIM") -> list[tuple[bytes, ...]]:
    return [(folder, b"100MEDIA", n.encode()) for n in names]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        # Names are camera-local (Asia/Shanghai); the oldest start + 24 h (rule R1).
        (_names("012345_CAM0007_20261125090000_0002.MP4"), "2026-11-26T01:00:00Z"),
        (
            _names(
                "012345_CAM0007_20261125090000_0002.MP4",
                "012345_CAM0007_20261124063000_0001.MP4",
                "012345_CAM0007_20261125120000_0003.MP4",
            ),
            "2026-11-24T22:30:00Z",
        ),
        # Names without a time give none; the timed one decides.
        (_names("clip.mp4", "012345_CAM0007_20261125000000_0001.MP4"), "2026-11-25T16:00:00Z"),
        # Not footage (extension): ignored even though its name has an older time.
        (
            _names("012345_CAM0007_20261101000000_0001.TXT", "012345_CAM0007_20261125090000_2.MP4"),
            "2026-11-26T01:00:00Z",
        ),
        # Nothing tells a time: now + 24 h.
        (_names("clip.mp4", "notes.txt"), "2026-11-26T09:00:00Z"),
        ([], "2026-11-26T09:00:00Z"),
    ],
)
def test_estimate_deadline(names: list[tuple[bytes, ...]], expected: str) -> None:
    assert isoformat_utc(estimate_deadline(GAT947, names, NOW)) == expected


def test_slot_progress_moves_by_bytes_within_a_file(
    daemon: Daemon, inproc_config: Config, clock: FixedClock, tmp_path: Path
) -> None:
    """The dock's status (what an officer watches) follows the bytes of a big clip as
    they are copied, not 0 then 100 % when the file is done."""
    job = _Job(NOW, next(daemon._seq), "slot-x")
    daemon._slots["slot-x"] = SlotState("slot-x", SERIAL, "/dev/null", _owner=job.seq)
    seen: list[int] = []
    progress = _SlotProgress(daemon, job)
    original = progress.advance

    def watched(n: int) -> None:
        original(n)
        seen.append(daemon._slots["slot-x"].bytes_done)

    progress.advance = watched  # type: ignore[method-assign]
    camera = tmp_path / "camera"
    size = 18 << 20  # more than four times _SlotProgress.FLUSH_BYTES
    put(camera, f"DCIM/100MEDIA/{clip_name(0, 1)}", os.urandom(size))
    small = dataclasses.replace(inproc_config.ingest, buffer_size=64 << 10)
    own = dataclasses.replace(inproc_config, ingest=small, state_dir=tmp_path / "own-state")
    with Service(own, clock) as service:
        run_session(service, camera, SERIAL, GAT947, wipe=False, progress=progress)
    slot = daemon._slots["slot-x"]
    assert (slot.files_done, slot.files_total) == (1, 1)
    assert slot.bytes_done == slot.bytes_total == size
    inside = [b for b in seen if 0 < b < size]
    assert inside == sorted(inside), "bytes only grow"
    assert len(set(inside)) >= 4, "bytes moved within the file, a few times a second or per 4 MiB"


def test_edf_queue_orders_by_deadline_then_arrival(daemon: Daemon) -> None:
    """Earliest deadline first (oldest footage, rule R1); equal deadlines in arrival order."""
    late = NOW + timedelta(hours=20)
    early = NOW + timedelta(hours=2)
    arrivals = [("slot-a", late), ("slot-b", early), ("slot-c", late), ("slot-d", early)]
    arrivals.append(("slot-e", NOW - timedelta(hours=1)))  # already overdue
    for key, deadline in arrivals:
        job = _Job(deadline, next(daemon._seq), key)
        daemon._slots[key] = SlotState(key, key.upper(), "/dev/null", _owner=job.seq)
        daemon._enqueue(job)
    assert all(daemon._slots[k].state == "queued" for k, _ in arrivals)
    assert daemon.status()["daemon"]["waiting"] == 5
    notifier = daemon.notify
    assert isinstance(notifier, RecordingNotifier)
    assert notifier.sent[-1].startswith("STATUS=") and "5 waiting" in notifier.sent[-1]
    order = []
    with daemon._lock:
        while daemon._jobs:
            order.append(heapq.heappop(daemon._jobs).key)
    assert order == ["slot-e", "slot-b", "slot-d", "slot-a", "slot-c"]


def test_check_overdue_with_a_moving_clock(daemon: Daemon, clock: FixedClock) -> None:
    """A camera assigned and not docked for devices.overdue_hours is overdue (R1)."""
    assert daemon.service is not None
    daemon.service.assign_device(SERIAL, officer="012345", unit="Patrol 3")
    daemon.service.assign_device("CAM0008", officer="054321", unit="Patrol 3")
    daemon.service.assign_device("CAM0008", officer=None, unit=None)  # back in the pool
    assert daemon.check_overdue() == []
    clock.advance(timedelta(hours=23, minutes=59))
    assert daemon.check_overdue() == []
    clock.advance(timedelta(minutes=2))
    assert daemon.check_overdue() == [SERIAL]


def test_check_overdue_logs_each_overdue_device(
    daemon: Daemon, clock: FixedClock, log_stream: io.StringIO
) -> None:
    assert daemon.service is not None
    daemon.service.assign_device(SERIAL, officer="012345", unit="Patrol 3")
    clock.advance(timedelta(days=2))
    assert daemon.check_overdue() == [SERIAL]
    [event] = logged(log_stream, "device.overdue")
    assert (event["serial"], event["officer"], event["unit"]) == (SERIAL, "012345", "Patrol 3")
    assert event["reasons"] == "not_docked" and "never docked" in event["why"]
    assert event["level"] == "warning"


@pytest.mark.parametrize(
    ("interval_minutes", "period_days", "fraction"),
    [
        (60.0, 30, 60 / (30 * 24 * 60)),
        (60.0, 1, 1 / 24),
        (1440.0, 7, 1 / 7),
        (5000.0, 1, 1.0),  # a slice larger than the period is the whole store
    ],
)
def test_periodic_audit_slice_covers_the_store_once_per_period(
    daemon: Daemon,
    monkeypatch: pytest.MonkeyPatch,
    interval_minutes: float,
    period_days: int,
    fraction: float,
) -> None:
    daemon.config = dataclasses.replace(
        daemon.config,
        integrity=IntegrityConfig(audit_period_days=period_days),
        daemon=dataclasses.replace(daemon.config.daemon, audit_interval_minutes=interval_minutes),
    )
    seen: list[float | None] = []
    assert daemon.service is not None
    monkeypatch.setattr(daemon.service, "audit", lambda f=None: seen.append(f))
    daemon.periodic_audit()
    assert seen == [pytest.approx(fraction)]


def test_periodic_audit_logs_a_slice(
    daemon: Daemon, tmp_path: Path, clip_bank: list[Path], log_stream: io.StringIO
) -> None:
    """The scheduled audit is a real fixity audit with its log entry (DESIGN: audits on
    schedule): 1/24 of a store of 3 objects re-hashes one, longest unchecked first."""
    assert daemon.service is not None
    camera = tmp_path / "camera"
    for i in range(3):
        put(camera, f"DCIM/{clip_name(i, i + 1)}", clip_bank[i])
    run_session(daemon.service, camera, SERIAL, GAT947, wipe=False)
    daemon.config = dataclasses.replace(
        daemon.config,
        integrity=IntegrityConfig(audit_period_days=1),
        daemon=dataclasses.replace(daemon.config.daemon, audit_interval_minutes=60.0),
    )
    daemon.periodic_audit()
    size, _ = daemon.service.catalog.head()
    raw = daemon.service.log_entry(size)
    assert raw is not None
    entry = json.loads(raw)
    assert entry["kind"] == "audit.done"
    assert entry["data"]["checked"] == 1 and entry["data"]["store_objects"] == 3
    assert entry["data"]["failures"] == []
    [event] = logged(log_stream, "audit.done")
    assert event["checked"] == 1


def test_periodic_checkpoint_signs_the_log_as_it_is(daemon: Daemon) -> None:
    """Checkpoints at least hourly (DESIGN 4a *should*); one only when the log grew."""
    service = daemon.service
    assert service is not None

    def checkpoints() -> int:
        return int(service.catalog.db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0])

    before = checkpoints()
    daemon.periodic_checkpoint()
    assert checkpoints() == before + 1
    last = service.catalog.last_checkpoint()
    assert last is not None and int(last["size"]) == service.catalog.head()[0]
    daemon.periodic_checkpoint()
    assert checkpoints() == before + 1  # nothing new to sign
    service.assign_device(SERIAL, officer="012345", unit="Patrol 3")
    daemon.periodic_checkpoint()
    assert checkpoints() == before + 2
    last = service.catalog.last_checkpoint()
    assert last is not None and int(last["size"]) == service.catalog.head()[0]


def test_scheduler_runs_the_jobs_at_the_configured_intervals(daemon: Daemon) -> None:
    daemon.config = dataclasses.replace(
        daemon.config,
        daemon=dataclasses.replace(
            daemon.config.daemon,
            checkpoint_interval_minutes=15,
            audit_interval_minutes=30,
            overdue_check_interval_minutes=45,
        ),
        retention=dataclasses.replace(daemon.config.retention, sweep_interval_hours=12),
    )
    daemon._start_scheduler()
    assert daemon._scheduler is not None
    jobs = {job.id: job.trigger.interval for job in daemon._scheduler.get_jobs()}
    assert jobs == {
        "checkpoint": timedelta(minutes=15),
        "audit": timedelta(minutes=30),
        "overdue": timedelta(minutes=45),
        "sweep": timedelta(hours=12),
        "views": timedelta(minutes=5),
    }


def test_a_failing_job_is_logged_not_raised(daemon: Daemon, log_stream: io.StringIO) -> None:
    def broken() -> None:
        raise RuntimeError("disk on fire")

    daemon._job("checkpoint", broken)()  # must not raise into the scheduler
    [event] = logged(log_stream, "schedule.failed")
    assert event["job"] == "checkpoint" and event["reason"] == "disk on fire"


def test_reload_in_process_applies_intervals(
    daemon: Daemon, tmp_path: Path, inproc_config: Config
) -> None:
    path = tmp_path / "dockd.toml"
    path.write_text(
        f'state_dir = "{inproc_config.state_dir}"\n'
        f'[daemon]\nruntime_dir = "{inproc_config.daemon.runtime_dir}"\n'
        "audit_interval_minutes = 7\n",
        encoding="utf-8",
    )
    daemon.config_path = path
    daemon.reload()
    assert daemon.config.daemon.audit_interval_minutes == 7
    assert daemon.service is not None and daemon.service.config is daemon.config
    assert daemon._scheduler is not None
    assert daemon._scheduler.get_job("audit").trigger.interval == timedelta(minutes=7)


def test_reload_keeps_track_of_mounted_slots(
    daemon: Daemon, tmp_path: Path, inproc_config: Config
) -> None:
    path = tmp_path / "dockd.toml"
    path.write_text(
        f'state_dir = "{inproc_config.state_dir}"\n'
        f'[daemon]\nruntime_dir = "{inproc_config.daemon.runtime_dir}"\n',
        encoding="utf-8",
    )
    daemon.config_path = path
    busy = (inproc_config.daemon.runtime_dir / "mounts" / "usb-1-1").absolute()
    daemon.mounter._busy.add(busy)  # as Mounter.mount() leaves it while a camera is mounted
    daemon.reload()
    assert busy in daemon.mounter._busy


# -- in process: the socket operations --------------------------------------------------------

ROOT = Identity(0, 0, (0,), "root")
# As the socket reports them (SO_PEERCRED/SO_PEERGROUPS): a clerk, two supervisors.
ALICE = Identity(1000, 1000, (1000, 5001), "alice")
BOB = Identity(1001, 1001, (1001, 5002), "bob")
CAROL = Identity(1002, 1002, (1002, 5002), "carol")
PEOPLE = AccessConfig(clerk=("5001",), supervisor=("5002",))


def test_handle_status_devices_checkpoint_reload(daemon: Daemon) -> None:
    status = daemon.handle("status", {}, ROOT)
    assert status["daemon"]["pid"] == os.getpid() and status["slots"] == []
    assert daemon.handle("devices", {}, ROOT) == []
    note = daemon.handle("checkpoint", {}, ROOT)["checkpoint"]
    assert daemon.service is not None and note.startswith(daemon.service.origin + "\n")
    assert daemon.handle("reload", {}, ROOT) == {"reloading": True}
    assert daemon._reload.is_set() and daemon._wake.is_set()


def test_handle_device_assign_records_the_actor(daemon: Daemon) -> None:
    result = daemon.handle(
        "device.assign",
        {
            "serial": SERIAL,
            "officer": "012345",
            "unit": "Patrol 3",
            "valid_from": "2026-11-24T00:00:00Z",
            "valid_to": "2026-11-26T00:00:00Z",
        },
        ALICE,
    )
    assert result["assignment"]["valid_to"] == "2026-11-26T00:00:00Z"
    assert daemon.service is not None
    raw = daemon.service.log_entry(result["assignment"]["log_seq"])
    assert raw is not None and json.loads(raw)["data"]["by"] == "alice(1000)"
    [device] = daemon.handle("devices", {}, ROOT)
    assert device["assigned_to"]["officer"] == "012345"


def test_handle_unknown_op_is_a_dockd_error(daemon: Daemon) -> None:
    with pytest.raises(DockdError, match="unknown request 'format-disk'") as info:
        daemon.handle("format-disk", {}, ROOT)
    assert info.value.exit_code == 1


@pytest.mark.parametrize("key", ["valid_from", "valid_to"])
@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "", 12])
def test_handle_device_assign_with_a_bad_time_is_a_usage_error(
    daemon: Daemon, key: str, value: object
) -> None:
    args = {"serial": SERIAL, "officer": "012345", "unit": "Patrol 3", key: value}
    with pytest.raises(UsageError, match="not a time") as info:
        daemon.handle("device.assign", args, ROOT)
    assert info.value.exit_code == 2
    assert daemon.handle("devices", {}, ROOT) == []  # nothing half-done


def test_handle_device_assign_without_a_serial_is_a_dockd_error(daemon: Daemon) -> None:
    with pytest.raises(DockdError):
        daemon.handle("device.assign", {"officer": "012345", "unit": "U"}, ROOT)


def test_handle_device_assign_time_without_offset_is_not_local_time(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        # The one time rule (dockd.clock.parse_time): no offset means UTC.
        result = daemon.handle(
            "device.assign",
            {
                "serial": SERIAL,
                "officer": "012345",
                "unit": "U",
                "valid_from": "2026-11-25T09:00:00",
            },
            ROOT,
        )
        assert result["assignment"]["valid_from"] == "2026-11-25T09:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()


# -- in process: retention through the daemon --------------------------------------------------


def _docked(service: Service, tmp_path: Path, count: int) -> list[int]:
    """`count` recordings of SERIAL, recorded the day before NOW (any bytes will do)."""
    cam = tmp_path / "cam"
    for i in range(count):
        start = NOW - timedelta(days=1, minutes=-i)
        name = gat947_name("012345", SERIAL, start, i + 1, "Asia/Shanghai")
        put(cam, f"DCIM/100MEDIA/{name}", f"recording {i}".encode())
    report = run_session(service, cam, SERIAL, GAT947, wipe=False)
    return [o.recording.id for o in report.outcomes]


def test_periodic_sweep_marks_then_deletes_after_grace(
    daemon: Daemon, clock: FixedClock, tmp_path: Path, log_stream: io.StringIO
) -> None:
    service = daemon.service
    assert service is not None
    ids = _docked(service, tmp_path, 3)
    daemon.handle("tag", {"ids": [ids[0]], "categories": ["evidence"]}, ALICE)
    clock.advance(timedelta(days=2 * 366))  # the routine ones are past 2 years
    first = daemon.periodic_sweep()
    assert first["marked_pending"] == ids[1:] and first["deleted"] == []
    clock.advance(timedelta(days=8))  # past grace_days (7)
    second = daemon.periodic_sweep()
    assert second["deleted"] == ids[1:] and second["objects_removed"] == 2
    states = {r.id: r.retention_state for r in service.recordings()}
    assert states == {ids[0]: "live", ids[1]: "deleted", ids[2]: "deleted"}
    entries = [json.loads(row.raw) for row in service.catalog.log_rows()]
    deleted = [e["data"] for e in entries if e["kind"] == "retention.deleted"]
    assert [d["recording"] for d in deleted] == ids[1:]
    assert {d["by"] for d in deleted} == {"dockd (scheduled sweep)"}
    assert service.verify().ok


def test_periodic_sweep_without_auto_delete_only_logs_the_plan(
    daemon: Daemon, clock: FixedClock, tmp_path: Path, log_stream: io.StringIO
) -> None:
    service = daemon.service
    assert service is not None
    ids = _docked(service, tmp_path, 2)
    off = dataclasses.replace(daemon.config.retention, auto_delete=False)
    daemon.config = service.config = dataclasses.replace(daemon.config, retention=off)
    clock.advance(timedelta(days=2 * 366))
    size_before = service.catalog.head()[0]
    result = daemon.periodic_sweep()
    assert result["dry_run"] is True
    assert [c["recording"] for c in result["mark_pending"]] == ids
    assert service.catalog.head()[0] == size_before  # nothing logged, nothing changed
    assert {r.retention_state for r in service.recordings()} == {"live"}
    [event] = logged(log_stream, "retention.plan")
    assert event["would_mark_pending"] == 2 and event["auto_delete"] is False


def test_handle_tag_case_hold_record_the_actor(daemon: Daemon, tmp_path: Path) -> None:
    service = daemon.service
    assert service is not None
    ids = _docked(service, tmp_path, 2)
    tagged = daemon.handle("tag", {"ids": ids, "cause": "占道经营"}, ALICE)
    daemon.handle("case.create", {"case": "C-1", "cause": "无照经营"}, BOB)
    daemon.handle("case.link", {"case": "C-1", "ids": [ids[0]]}, BOB)
    held = daemon.handle("hold.set", {"case": "C-1", "reason": "court order"}, CAROL)
    assert held["recordings"] == [ids[0]]
    by = {
        e["kind"]: e["data"]["by"]
        for e in (json.loads(row.raw) for row in service.catalog.log_rows())
        if "by" in e["data"]
    }
    assert by["recording.tagged"] == "alice(1000)" and by["case.linked"] == "bob(1001)"
    assert by["hold.set"] == "carol(1002)"
    assert tagged["recordings"] == ids
    with pytest.raises(UsageError, match="ids: expected a list of recording ids"):
        daemon.handle("tag", {"ids": "1,2", "cause": "x"}, ALICE)


def test_reload_with_a_new_retention_preset_retiers(
    daemon: Daemon, tmp_path: Path, inproc_config: Config
) -> None:
    service = daemon.service
    assert service is not None
    ids = _docked(service, tmp_path, 1)
    assert service.recording(ids[0]).tier == "2y"  # type: ignore[union-attr]
    path = tmp_path / "dockd.toml"
    path.write_text(
        f'state_dir = "{inproc_config.state_dir}"\n'
        f'[daemon]\nruntime_dir = "{inproc_config.daemon.runtime_dir}"\n'
        '[retention]\npreset = "minimum"\n',
        encoding="utf-8",
    )
    daemon.config_path = path
    daemon.reload()
    assert service.recording(ids[0]).tier == "6m"  # type: ignore[union-attr]
    kinds = [json.loads(row.raw)["kind"] for row in service.catalog.log_rows()]
    assert kinds[-2:] == ["retention.policy", "retention.updated"]
