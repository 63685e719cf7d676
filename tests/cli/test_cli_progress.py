"""The progress bar of `ingest`, `verify`, `audit` and `verify-disc`, run as the real `dockd`.

A bar is drawn on stderr only for a person at a terminal: under a
pseudo-terminal it appears; with --json, with stderr not a terminal, or
under systemd (INVOCATION_ID, JOURNAL_STREAM) nothing but the report is
written, and stdout stays exactly the report.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios
import threading
from dataclasses import dataclass
from datetime import datetime
from io import StringIO
from pathlib import Path

import pytest
import structlog

from dockd import logs
from dockd.cli.common import progress_bar, wants_bar
from tests.conftest import camera_name, put, recent

DOCKD = Path(sys.executable).with_name("dockd")
BIG = 24 << 20
HIDE_CURSOR = "\x1b[?25l"  # what rich's live display sends first
BAR = "━"  # rich's bar (tables' header rules use it too: looked for on stderr only)


@dataclass(frozen=True)
class State:
    cfg: Path
    state: Path
    iso: Path


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str  # what reached the terminal, when stderr was one


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without what would decide the test for it.

    The suite itself may run under systemd (a CI unit), which sets the very
    variables a test means to control.
    """
    drop = {"INVOCATION_ID", "JOURNAL_STREAM", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE",
            "TTY_INTERACTIVE", "COLUMNS", "LINES", "TERM"}  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["TERM"] = "xterm-256color"
    env.update(extra)
    return env


def _args(state: State, *args: str) -> list[str]:
    return [str(DOCKD), "--config", str(state.cfg), "--state-dir", str(state.state), *args]


def piped(state: State, *args: str) -> Run:
    proc = subprocess.run(_args(state, *args), capture_output=True, text=True, env=_env())
    return Run(proc.returncode, proc.stdout, proc.stderr)


def in_pty(state: State, *args: str, stdout_too: bool = True, **env: str) -> Run:
    """Run dockd with stderr (and stdout, unless not `stdout_too`) on a pseudo-terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        _args(state, *args),
        stdin=slave,
        stdout=slave if stdout_too else subprocess.PIPE,
        stderr=slave,
        env=_env(**env),
    )
    os.close(slave)
    seen: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            seen.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out = proc.stdout.read().decode() if proc.stdout is not None else ""
    code = proc.wait(timeout=300)
    reader.join(timeout=30)
    os.close(master)
    return Run(code, out, b"".join(seen).decode("utf-8", "replace"))


def _no_bar(text: str) -> None:
    """No live display: rich hides the cursor first; no percentage, no rate."""
    assert HIDE_CURSOR not in text and "%" not in text and "/s" not in text, text[-2000:]


def _bar(text: str) -> None:
    assert HIDE_CURSOR in text and BAR in text, text[-2000:]
    assert "100%" in text and " MB" in text, text[-2000:]


@pytest.fixture(scope="module")
def docked(tmp_path_factory: pytest.TempPathFactory, now_utc: datetime) -> State:
    """One docking of two files made three hours ago (one of 24 MiB), kept as evidence on
    an exported disc image."""
    if shutil.which("xorriso") is None:
        pytest.skip("needs xorriso")
    root = tmp_path_factory.mktemp("progress")
    cfg = root / "dockd.toml"
    cfg.write_text("[ingest]\nchange_retry_delay = 0\nmin_free_bytes = 0\nbuffer_size = 262144\n")
    state = State(cfg, root / "state", root / "discs")
    cam = root / "cam"
    for i, size in enumerate((BIG, 300_000)):
        name = camera_name("012345", "DSJ0001", recent(now_utc, i), i + 1)
        put(cam, f"DCIM/100MEDIA/{name}", os.urandom(size))
    ingested = piped(state, "ingest", str(cam), "--serial", "DSJ0001", "--json")
    assert ingested.code in (0, 3), ingested.stderr  # 3: random bytes are no MP4 (flagged)
    ids = [str(r["id"]) for r in json.loads(ingested.stdout)["recordings"]]
    assert piped(state, "tag", *ids, "--category", "evidence", "--json").code == 0
    # Four eyes: asked by one person, approved by another (root, told apart by login).
    asked = piped(state, "request", "export", *ids, "--reason", "progress test", "--json")
    assert asked.code == 0, asked.stderr
    request = str(json.loads(asked.stdout)["request"])
    approved = subprocess.run(
        _args(state, "approve", request, "--note", "ok"), capture_output=True, text=True,
        env={**_env(), "SUDO_USER": "supervisor-li"}, check=False,
    )  # fmt: skip
    assert approved.returncode == 0, approved.stderr
    built = piped(
        state, "export", "build", "--media", "dvd", "--out", str(state.iso),
        "--request", request, "--json",
    )  # fmt: skip
    assert built.code == 0, built.stderr
    [image] = [d["image"] for d in json.loads(built.stdout)["discs"]]
    return State(cfg, state.state, Path(image))


def _camera(tmp_path: Path, now_utc: datetime) -> Path:
    cam = tmp_path / "cam"
    name = camera_name("012345", "DSJ0009", recent(now_utc, 30), 1)
    put(cam, f"DCIM/100MEDIA/{name}", os.urandom(BIG))
    return cam


def _fresh(tmp_path: Path, docked: State) -> State:
    return State(docked.cfg, tmp_path / "state", docked.iso)


COMMANDS = {
    "verify": ("verify",),
    "audit": ("audit", "--fraction", "1"),
    "verify-disc": ("verify-disc", "ISO"),
}


def _command(name: str, state: State) -> tuple[str, ...]:
    return tuple(str(state.iso) if a == "ISO" else a for a in COMMANDS[name])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_bar_on_a_terminal(docked: State, name: str) -> None:
    run = in_pty(docked, *_command(name, docked))
    assert run.code == 0, run.stderr[-2000:]
    _bar(run.stderr)
    assert "OK" in run.stderr or "re-hashed" in run.stderr  # the report, after the bar


def test_ingest_bar_on_a_terminal(tmp_path: Path, docked: State, now_utc: datetime) -> None:
    state = _fresh(tmp_path, docked)
    run = in_pty(state, "ingest", str(_camera(tmp_path, now_utc)), "--serial", "DSJ0009")
    assert run.code in (0, 3), run.stderr[-2000:]
    _bar(run.stderr)
    assert "ingest: 0/1 files" in run.stderr and "25.2 MB" in run.stderr
    assert "session 1: device DSJ0009" in run.stderr


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_json_on_a_terminal_has_no_bar(docked: State, name: str) -> None:
    run = in_pty(docked, *_command(name, docked), "--json", stdout_too=False)
    assert run.code == 0
    assert json.loads(run.stdout)["ok"] is True
    _no_bar(run.stderr)


def test_ingest_json_on_a_terminal_has_no_bar(
    tmp_path: Path, docked: State, now_utc: datetime
) -> None:
    state = _fresh(tmp_path, docked)
    cam = _camera(tmp_path, now_utc)
    run = in_pty(state, "ingest", str(cam), "--serial", "DSJ0009", "--json", stdout_too=False)
    assert run.code in (0, 3)
    assert json.loads(run.stdout)["counts"]["ingested"] == 1
    _no_bar(run.stderr)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_not_a_terminal_has_no_bar(docked: State, name: str) -> None:
    for args in (_command(name, docked), (*_command(name, docked), "--json")):
        run = piped(docked, *args)
        assert run.code == 0, run.stderr
        assert "\x1b" not in run.stderr and BAR not in run.stderr, run.stderr
        assert "\x1b" not in run.stdout
        if "--json" in args:
            assert json.loads(run.stdout)["ok"] is True


def test_ingest_not_a_terminal_has_no_bar(tmp_path: Path, docked: State, now_utc: datetime) -> None:
    state = _fresh(tmp_path, docked)
    run = piped(state, "ingest", str(_camera(tmp_path, now_utc)), "--serial", "DSJ0009")
    assert run.code in (0, 3)
    assert "\x1b" not in run.stderr and BAR not in run.stderr and "\x1b" not in run.stdout
    assert "session 1: device DSJ0009" in run.stdout


@pytest.mark.parametrize(
    "systemd", [{"INVOCATION_ID": "0123456789abcdef0123456789abcdef"}, {"JOURNAL_STREAM": "8:1"}]
)
def test_no_bar_under_systemd_even_on_a_terminal(
    tmp_path: Path, docked: State, now_utc: datetime, systemd: dict[str, str]
) -> None:
    run = in_pty(docked, "verify", **systemd)
    assert run.code == 0 and "verify: OK" in run.stderr
    _no_bar(run.stderr)
    state = _fresh(tmp_path, docked)
    cam = _camera(tmp_path, now_utc)
    run = in_pty(state, "ingest", str(cam), "--serial", "DSJ0009", **systemd)
    assert run.code in (0, 3) and "session 1" in run.stderr
    _no_bar(run.stderr)


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("env", "tty", "as_json", "expected"),
    [
        ({}, True, False, True),
        ({}, True, True, False),
        ({}, False, False, False),
        ({"INVOCATION_ID": "0123"}, True, False, False),
        ({"JOURNAL_STREAM": "8:1234"}, True, False, False),
        ({"TERM": "dumb"}, True, False, False),
    ],
)
def test_who_gets_a_bar(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool, as_json: bool, expected: bool
) -> None:
    for name in ("INVOCATION_ID", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("sys.stderr", _Terminal() if tty else StringIO())
    assert wants_bar(as_json) is expected


def test_log_lines_go_above_the_bar_and_logging_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the bar is live, log lines reach the stderr rich installed (which prints them
    above the bar), not the stream logging was set up with."""
    logs.configure("info", "keyvalue")
    before = structlog.get_config()["logger_factory"]
    with progress_bar(True) as bar:
        assert bar is not None
        shown = StringIO()
        monkeypatch.setattr("sys.stderr", shown)
        structlog.get_logger("dockd.test").info("test.above_the_bar", n=1)
        monkeypatch.undo()
    assert "event='test.above_the_bar'" in shown.getvalue()
    assert structlog.get_config()["logger_factory"] is before
    with progress_bar(False) as none:
        assert none is None
