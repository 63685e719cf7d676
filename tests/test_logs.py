"""Logging: stable event and journal field names (an interface), and format choice.

The journald mapping is pinned as a pure function; one test sends a real
entry through python-systemd to a fake journal socket in a private mount
namespace (root only), and parses the native protocol datagram it receives.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import structlog

from dockd import logs
from dockd.errors import ConfigError


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Each test configures structlog for the process; put the default back."""
    yield
    structlog.reset_defaults()


# -- the journald mapping (pure) -------------------------------------------------------


def test_journald_fields_names_and_values() -> None:
    """Invariant: field names are DOCKD_<KEY>, values text, containers JSON."""
    fields = logs.journald_fields(
        {
            "event": "session.done",
            "level": "info",
            "timestamp": "2026-11-25T09:00:00Z",
            "session": 3,
            "serial": "DSJ0001",
            "slot": 2,
            "recording": 12,
            "sha256": "ab" * 32,
            "path": "DCIM/100MEDIA/DSJ0001_20261125080000_0001.MP4",
            "flags": ["late", "empty"],
            "summary": {"ingested": 3, "failed": 0},
            "wipe": True,
            "officer": None,
        }
    )
    assert fields == {
        "MESSAGE": (
            "session.done session=3 serial='DSJ0001' slot=2 recording=12 "
            f"sha256='{'ab' * 32}' path='DCIM/100MEDIA/DSJ0001_20261125080000_0001.MP4' "
            "flags=['late', 'empty'] summary={'ingested': 3, 'failed': 0} wipe=True officer=None"
        ),
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": "dockd",
        "DOCKD_EVENT": "session.done",
        "DOCKD_SESSION": "3",
        "DOCKD_SERIAL": "DSJ0001",
        "DOCKD_SLOT": "2",
        "DOCKD_RECORDING": "12",
        "DOCKD_SHA256": "ab" * 32,
        "DOCKD_PATH": "DCIM/100MEDIA/DSJ0001_20261125080000_0001.MP4",
        "DOCKD_FLAGS": '["late", "empty"]',
        "DOCKD_SUMMARY": '{"failed": 0, "ingested": 3}',
        "DOCKD_WIPE": "true",
        "DOCKD_OFFICER": "",
    }


@pytest.mark.parametrize(
    ("level", "priority"),
    [("debug", "7"), ("info", "6"), ("warning", "4"), ("error", "3"), ("critical", "2")],
)
def test_priority_follows_level(level: str, priority: str) -> None:
    fields = logs.journald_fields({"event": "x", "level": level})
    assert fields["PRIORITY"] == priority
    assert "DOCKD_LEVEL" not in fields


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("reason", "DOCKD_REASON"),
        ("sha-256", "DOCKD_SHA_256"),
        ("old key.id", "DOCKD_OLD_KEY_ID"),
        ("_private", "DOCKD__PRIVATE"),
        ("9lives", "DOCKD_9LIVES"),
        ("警号", "DOCKD___"),
        ("x" * 80, "DOCKD_" + "X" * 58),
    ],
)
def test_field_names_are_sanitised(key: str, name: str) -> None:
    """journald accepts only [A-Z0-9_], at most 64 characters, not leading "_"."""
    assert logs.field_name(key) == name
    assert len(name) <= 64


def test_values_with_newlines_and_bytes_pass_through() -> None:
    fields = logs.journald_fields({"event": "x", "path": "a\nb", "raw": b"\xff\x00ok"})
    assert fields["DOCKD_PATH"] == "a\nb"
    assert fields["DOCKD_RAW"] == "\\xff\x00ok"
    assert fields["MESSAGE"] == "x path='a\\nb' raw=b'\\xff\\x00ok'"


def test_exception_goes_after_the_message() -> None:
    fields = logs.journald_fields(
        {"event": "daemon.crashed", "level": "error", "exception": "Traceback …\nBoom"}
    )
    assert fields["MESSAGE"] == "daemon.crashed\nTraceback …\nBoom"
    assert fields["DOCKD_EXCEPTION"] == "Traceback …\nBoom"
    assert fields["PRIORITY"] == "3"


# -- structlog wiring with an injected sender -------------------------------------------


def test_journald_format_sends_fields_and_filters_level() -> None:
    sent: list[Mapping[str, str]] = []
    assert logs.configure("info", "journald", stream=io.StringIO(), sender=sent.append) == (
        "journald"
    )
    log = structlog.get_logger("dockd.test")
    log.debug("not.sent", x=1)
    log.warning("ingest.file.failed", session=4, path="a.mp4", reason="read error")
    assert sent == [
        {
            "MESSAGE": "ingest.file.failed session=4 path='a.mp4' reason='read error'",
            "PRIORITY": "4",
            "SYSLOG_IDENTIFIER": "dockd",
            "DOCKD_EVENT": "ingest.file.failed",
            "DOCKD_SESSION": "4",
            "DOCKD_PATH": "a.mp4",
            "DOCKD_REASON": "read error",
        }
    ]


def test_journald_exception_carries_the_traceback() -> None:
    sent: list[Mapping[str, str]] = []
    logs.configure("info", "journald", stream=io.StringIO(), sender=sent.append)
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        structlog.get_logger().exception("daemon.crashed")
    (fields,) = sent
    assert fields["PRIORITY"] == "3"
    assert "RuntimeError: disk on fire" in fields["DOCKD_EXCEPTION"]
    assert fields["MESSAGE"].startswith("daemon.crashed\nTraceback")


def test_unreachable_journal_falls_back_to_the_stream() -> None:
    """A log call never raises into the ingest that made it (fails soft, not silent)."""

    def broken(fields: Mapping[str, str]) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    stream = io.StringIO()
    logs.configure("info", "journald", stream=stream, sender=broken)
    structlog.get_logger().error("session.done", session=1)
    assert stream.getvalue() == (
        "<3>session.done session=1 (journal unreachable: [Errno 2] No such file or directory)\n"
    )


def test_keyvalue_format_unchanged() -> None:
    stream = io.StringIO()
    logs.configure("info", "keyvalue", stream=stream)
    structlog.get_logger().info("session.start", session=1, serial="DSJ0001")
    line = stream.getvalue()
    assert line.startswith("timestamp='")
    assert line.rstrip("\n").endswith(
        "level='info' event='session.start' session=1 serial='DSJ0001'"
    )


def test_json_format_is_one_object_per_line() -> None:
    stream = io.StringIO()
    logs.configure("debug", "json", stream=stream)
    structlog.get_logger().debug("slot.state", slot=1, state="copying")
    record = json.loads(stream.getvalue())
    assert record["event"] == "slot.state"
    assert record["level"] == "debug"
    assert record["slot"] == 1 and record["state"] == "copying"


def test_console_format_has_no_colours_off_a_terminal() -> None:
    stream = io.StringIO()
    logs.configure("info", "console", stream=stream)
    structlog.get_logger().info("dock.detected", serial="DSJ0001")
    text = stream.getvalue()
    assert "dock.detected" in text and "serial=DSJ0001" in text
    assert "\x1b[" not in text


def test_unknown_format_or_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"log\.format"):
        logs.configure("info", "syslog", stream=io.StringIO())
    with pytest.raises(ConfigError, match=r"log\.level"):
        logs.configure("loud", "keyvalue", stream=io.StringIO())


# -- auto ---------------------------------------------------------------------------------


def _journal_stream_value(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def test_auto_picks_journald_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    target = tmp_path / "stream"
    with target.open("w") as stream:
        env = {"JOURNAL_STREAM": _journal_stream_value(target)}
        assert logs.resolve_format("auto", stream, env) == "journald"


def test_auto_ignores_an_inherited_journal_stream(tmp_path: Path) -> None:
    """A child whose stderr was redirected inherits JOURNAL_STREAM; it must not match."""
    (tmp_path / "journal").write_text("")
    with (tmp_path / "other").open("w") as stream:
        env = {"JOURNAL_STREAM": _journal_stream_value(tmp_path / "journal")}
        assert logs.resolve_format("auto", stream, env) == "keyvalue"
        assert logs.resolve_format("auto", stream, {"JOURNAL_STREAM": "garbage"}) == "keyvalue"
        assert logs.resolve_format("auto", stream, {}) == "keyvalue"


def test_auto_picks_console_on_a_terminal() -> None:
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as stream:
            assert logs.resolve_format("auto", stream, {}) == "console"
    finally:
        os.close(leader)
        os.close(follower)


def test_explicit_formats_are_kept(tmp_path: Path) -> None:
    with (tmp_path / "s").open("w") as stream:
        for fmt in ("keyvalue", "json", "console", "journald"):
            assert logs.resolve_format(fmt, stream, {}) == fmt


def test_auto_without_fileno_is_keyvalue() -> None:
    assert logs.resolve_format("auto", io.StringIO(), {"JOURNAL_STREAM": "1:2"}) == "keyvalue"


# -- a real entry through python-systemd ------------------------------------------------

_HELPER = r"""
import json, socket, sys
import structlog
from dockd import logs

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("/run/systemd/journal/socket")
sock.settimeout(10)
logs.configure("info", "auto")
structlog.get_logger("dockd.test").warning(
    "session.done", session=7, serial="DSJ0001", path="DCIM/a\nb.mp4", flags=["late"]
)
sys.stdout.buffer.write(sock.recv(1 << 20))
"""


def _parse_native(datagram: bytes) -> dict[str, str]:
    """journald's native protocol: KEY=value lines, or KEY\\n<le64 size><bytes>\\n."""
    fields: dict[str, str] = {}
    rest = datagram
    while rest:
        line, _, after = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            rest = after
        else:
            key = line
            (size,) = struct.unpack("<Q", after[:8])
            value = after[8 : 8 + size]
            assert after[8 + size : 9 + size] == b"\n"
            rest = after[9 + size :]
        fields[key.decode()] = value.decode()
    return fields


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_real_entry_through_python_systemd(tmp_path: Path) -> None:
    """sd_journal_sendv's datagram, caught on a fake socket at the real path.

    A private mount namespace with a tmpfs on /run puts the fake socket where
    libsystemd sends; the host's /run is untouched. stderr is a file named in
    JOURNAL_STREAM, so "auto" must choose journald on its own.
    """
    (tmp_path / "helper.py").write_text(_HELPER)
    stderr_path = tmp_path / "stderr"
    stderr_path.write_text("")
    env = dict(os.environ, JOURNAL_STREAM=_journal_stream_value(stderr_path))
    script = (
        "mount --make-rprivate / && mount -t tmpfs tmpfs /run && "
        'mkdir -p /run/systemd/journal && exec "$0" "$1"'
    )
    with stderr_path.open("a") as err:
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", script, sys.executable, str(tmp_path / "helper.py")],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            timeout=60,
            check=False,
        )
    if done.returncode != 0 and b"unshare" in stderr_path.read_bytes():
        pytest.skip(f"no mount namespace here: {stderr_path.read_text()}")
    assert done.returncode == 0, stderr_path.read_text()
    fields = _parse_native(done.stdout)
    assert fields == {
        "MESSAGE": "session.done session=7 serial='DSJ0001' path='DCIM/a\\nb.mp4' flags=['late']",
        "PRIORITY": "4",
        "SYSLOG_IDENTIFIER": "dockd",
        "DOCKD_EVENT": "session.done",
        "DOCKD_SESSION": "7",
        "DOCKD_SERIAL": "DSJ0001",
        "DOCKD_PATH": "DCIM/a\nb.mp4",
        "DOCKD_FLAGS": '["late"]',
    }
