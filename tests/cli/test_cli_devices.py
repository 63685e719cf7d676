"""`dockd device list|show|assign|unassign` without a daemon (direct mode).

No daemon listens on the configured runtime directory, so `change()` opens
the state directory itself and the actor is the local user (local_actor).
Most tests use click's CliRunner in process; a few run the real CLI as its
own process to pin exit codes and messages as an operator sees them.
Rule R2 (labels: officer, unit, device number) is what the registry serves.
"""

from __future__ import annotations

import json
import os
import pwd
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockd.cli.devices import _utc
from dockd.clock import isoformat_utc
from dockd.errors import UsageError
from tests.cli.harness import CliEnv, write_config
from tests.conftest import camera_name, put, recent
from tests.volumes import run_dockd

SERIAL = "CAM0001"


@dataclass
class Env(CliEnv):
    tmp: Path

    def json(self, *args: str, env: dict[str, str | None] | None = None) -> Any:
        return super().json(*args, "--json", env=env)

    def assign(self, *args: str, env: dict[str, str | None] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.json("device", "assign", *args, env=env)
        return result


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(write_config(tmp_path), tmp_path / "state", tmp_path)


# -- assign / unassign ----------------------------------------------------------------------


def test_assign_text_output(env: Env) -> None:
    result = env.ok(
        "device", "assign", SERIAL, "--officer", "012345", "--unit", "Patrol 3",
        "--number", "BWC-01", "--from", "2026-11-24",
    )  # fmt: skip
    assert result.stdout.strip() == (
        f"assignment 1: {SERIAL} → 012345 (Patrol 3) from 2026-11-24T00:00:00Z "
        "until further notice; 0 recording(s) re-attributed"
    )
    result = env.ok(
        "device", "assign", SERIAL, "--officer", "054321", "--unit", "Traffic",
        "--from", "2026-11-26 08:00", "--to", "2026-11-27 08:00",
    )  # fmt: skip
    assert "assignment 2:" in result.stdout
    assert "from 2026-11-26T08:00:00Z until 2026-11-27T08:00:00Z" in result.stdout


def test_assign_json_output(env: Env) -> None:
    data = env.assign(
        SERIAL, "--officer", "012345", "--unit", "Patrol 3", "--number", "BWC-01",
        "--from", "2026-11-24", "--reason", "issued at roll call",
    )  # fmt: skip
    assert data["reattributed"] == []
    a = data["assignment"]
    assert set(a) == {
        "id", "serial", "officer", "unit", "device_number", "valid_from", "valid_to",
        "created_at", "log_seq",
    }  # fmt: skip
    assert (a["id"], a["serial"], a["officer"], a["unit"], a["device_number"]) == (
        1, SERIAL, "012345", "Patrol 3", "BWC-01"
    )  # fmt: skip
    assert a["valid_from"] == "2026-11-24T00:00:00Z" and a["valid_to"] is None
    assert a["created_at"].endswith("Z")
    # Invariant 3: the change is in the log, with who made it and why.
    entry = env.log_entry(a["log_seq"])
    assert entry["kind"] == "device.assigned"
    assert entry["data"]["reason"] == "issued at roll call"
    assert entry["data"]["officer"] == "012345"


def test_default_from_is_now(env: Env) -> None:
    a = env.assign(SERIAL, "--officer", "012345", "--unit", "Patrol 3")["assignment"]
    assert a["valid_from"] == a["created_at"]


def test_direct_change_names_the_local_user(env: Env) -> None:
    """Without a daemon the actor is local_actor(): the user, and who used sudo."""
    a = env.assign(SERIAL, "--officer", "012345", "--unit", "Patrol 3", env={"SUDO_USER": "alice"})[
        "assignment"
    ]
    me = pwd.getpwuid(os.getuid()).pw_name
    assert env.log_entry(a["log_seq"])["data"]["by"] == f"{me}({os.getuid()}) via sudo by alice"
    b = env.assign(SERIAL, "--officer", "012345", "--unit", "Patrol 4")["assignment"]
    assert env.log_entry(b["log_seq"])["data"]["by"] == f"{me}({os.getuid()})"


def test_unassign_text_and_json(env: Env) -> None:
    env.assign(SERIAL, "--officer", "012345", "--unit", "Patrol 3", "--from", "2026-11-01")
    result = env.ok("device", "unassign", SERIAL, "--from", "2026-11-20", "--reason", "broken")
    assert result.stdout.strip() == (
        f"assignment 2: {SERIAL} → nobody (returned to the pool) from 2026-11-20T00:00:00Z "
        "until further notice; 0 recording(s) re-attributed"
    )
    data = env.json("device", "unassign", SERIAL, "--from", "2026-11-21", "--to", "2026-11-22")
    a = data["assignment"]
    assert (a["id"], a["officer"], a["unit"], a["device_number"]) == (3, None, None, None)
    assert (a["valid_from"], a["valid_to"]) == ("2026-11-21T00:00:00Z", "2026-11-22T00:00:00Z")
    [device] = env.json("device", "list")
    assert device["assigned_to"] is None  # in the pool now
    assert [h["officer"] for h in device["history"]] == ["012345", None, None]


def test_assign_needs_officer_and_unit(env: Env) -> None:
    missing = env.run("device", "assign", SERIAL, "--officer", "012345")
    assert missing.exit_code == 2 and "--unit" in missing.output
    blank = env.run("device", "assign", SERIAL, "--officer", "  ", "--unit", "Patrol 3")
    assert blank.exit_code == 2
    assert "an assignment needs both an officer and a unit (--officer)" in blank.stderr
    assert env.json("device", "list") == []


@pytest.mark.parametrize("serial", ["CAM0001\n", "CAM/0001"])
def test_assign_refuses_a_malformed_serial(env: Env, serial: str) -> None:
    result = env.run("device", "assign", serial, "--officer", "012345", "--unit", "Patrol 3")
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert env.json("device", "list") == []


# -- --from / --to -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2026-11-24", "2026-11-24T00:00:00Z"),  # a date: its midnight, UTC
        (" 2026-11-24 ", "2026-11-24T00:00:00Z"),
        ("2026-11-24 09:30", "2026-11-24T09:30:00Z"),  # UTC, not local time
        ("2026-11-24T09:30", "2026-11-24T09:30:00Z"),
        ("2026-11-24T09:30:15Z", "2026-11-24T09:30:15Z"),
        ("2026-11-24 09:30:15.250Z", "2026-11-24T09:30:15.250000Z"),
        ("2026-11-24T17:30:00+08:00", "2026-11-24T09:30:00Z"),  # an offset is honoured
    ],
)
def test_from_and_to_parsing(env: Env, given: str, stored: str) -> None:
    a = env.assign(SERIAL, "--officer", "012345", "--unit", "U", "--from", given)["assignment"]
    assert a["valid_from"] == stored
    b = env.assign(
        SERIAL, "--officer", "012345", "--unit", "U", "--from", "2026-01-01", "--to", given
    )["assignment"]
    assert b["valid_to"] == stored


def test_utc_helper_passes_none_through() -> None:
    assert _utc(None, "--from") is None


def test_utc_helper_accepts_negative_offsets() -> None:
    assert _utc("2026-11-24T04:30:00-05:00", "--from") == "2026-11-24T09:30:00Z"


@pytest.mark.parametrize("option", ["--from", "--to"])
@pytest.mark.parametrize(
    "given", ["yesterday", "2026-13-01", "24/11/2026", "2026-11-24 25:00", "", "2026-11-24T9:30"]
)
def test_invalid_times_exit_2_and_change_nothing(env: Env, option: str, given: str) -> None:
    """Fails closed: a time that cannot be read is refused before anything is written."""
    result = env.run(
        "device", "assign", SERIAL, "--officer", "012345", "--unit", "U", option, given
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"dockd: error: {option}: not a time: {given!r} (use e.g. 2026-11-25T09:00:00Z)"
    )
    assert result.stdout == ""
    unassign = env.run("device", "unassign", SERIAL, option, given)
    assert unassign.exit_code == 2
    assert env.json("device", "list") == []


@pytest.mark.parametrize(
    ("start", "end"),
    [("2026-11-25", "2026-11-24"), ("2026-11-25 09:00", "2026-11-25 09:00")],
)
def test_to_not_after_from_exits_2(env: Env, start: str, end: str) -> None:
    result = env.run(
        "device", "assign", SERIAL, "--officer", "012345", "--unit", "U",
        "--from", start, "--to", end,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    s, e = _utc(start, "--from"), _utc(end, "--to")
    assert result.stderr.strip() == (
        f"dockd: error: the assignment's end ({e}) must be after its start ({s}) (--to)"
    )
    assert env.json("device", "list") == []


def test_to_before_the_default_from_exits_2(env: Env) -> None:
    result = env.run("device", "unassign", SERIAL, "--to", "2000-01-01")
    assert result.exit_code == 2
    assert "end (2000-01-01T00:00:00Z) must be after its start (" in result.stderr


# -- list / show ---------------------------------------------------------------------------------


def test_list_json_and_text(env: Env) -> None:
    assert env.json("device", "list") == []
    empty = env.ok("device", "list")
    assert "serial" in empty.stdout  # the table's header, no rows
    env.assign(SERIAL, "--officer", "012345", "--unit", "Patrol 3", "--number", "BWC-01",
               "--from", "2026-01-01")  # fmt: skip
    env.assign("CAM0002", "--officer", "054321", "--unit", "Traffic", "--from", "2099-01-01")
    rows = env.json("device", "list")
    assert [r["serial"] for r in rows] == [SERIAL, "CAM0002"]
    first, second = rows
    assert set(first) == {
        "serial", "vendor", "model", "profile", "first_seen", "last_docked", "last_slot",
        "recordings", "assigned_to", "history", "overdue",
    }  # fmt: skip
    assert first["assigned_to"]["officer"] == "012345"
    assert first["last_docked"] is None and first["recordings"] == 0
    # Assigned since January and never docked: overdue (R1: offload daily).
    assert first["overdue"] is True
    # Assigned only from 2099: nobody has it now, so not overdue.
    assert second["assigned_to"] is None and second["overdue"] is False
    assert len(second["history"]) == 1

    text = env.ok("device", "list").stdout
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert "012345" in lines[SERIAL] and "BWC-01" in lines[SERIAL]
    assert "Patrol 3" in lines[SERIAL] and "never" in lines[SERIAL]
    assert "OVERDUE" in lines[SERIAL]
    assert "unassigned" in lines["CAM0002"] and "OVERDUE" not in lines["CAM0002"]


def test_show_unknown_serial_exits_2(env: Env) -> None:
    for extra in ((), ("--json",)):
        result = env.run("device", "show", "NOPE", *extra)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == "dockd: error: no device 'NOPE' (see dockd device list)"
        assert result.stdout == ""
    env.assign(SERIAL, "--officer", "012345", "--unit", "U")
    assert env.run("device", "show", SERIAL.lower()).exit_code == 2  # serials are exact


def test_show_timeline_after_two_overlapping_assignments(env: Env) -> None:
    """Newest registration wins where periods overlap; the older one resumes after it."""
    env.assign(SERIAL, "--officer", "012345", "--unit", "Patrol 3",
               "--from", "2026-11-01", "--to", "2026-11-20")  # fmt: skip
    env.assign(SERIAL, "--officer", "054321", "--unit", "Traffic",
               "--from", "2026-11-10", "--to", "2026-11-15")  # fmt: skip
    data = env.json("device", "show", SERIAL)
    assert data["serial"] == SERIAL
    assert [(h["id"], h["officer"]) for h in data["history"]] == [(1, "012345"), (2, "054321")]
    assert data["timeline"] == [
        {"from": "2026-11-01T00:00:00Z", "to": "2026-11-10T00:00:00Z",
         "officer": "012345", "unit": "Patrol 3", "assignment": 1},
        {"from": "2026-11-10T00:00:00Z", "to": "2026-11-15T00:00:00Z",
         "officer": "054321", "unit": "Traffic", "assignment": 2},
        {"from": "2026-11-15T00:00:00Z", "to": "2026-11-20T00:00:00Z",
         "officer": "012345", "unit": "Patrol 3", "assignment": 1},
    ]  # fmt: skip
    # Both periods are over: nobody has the camera now.
    assert data["assigned_to"] is None

    text = env.ok("device", "show", SERIAL).stdout
    assert text.splitlines()[0].strip() == f"device {SERIAL}"
    assert "who had it when (newest registration wins)" in text
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines()
            if "│" in line and "2026" in line]  # fmt: skip
    assert [(r[2], r[4]) for r in rows] == [("012345", "1"), ("054321", "2"), ("012345", "1")]


def test_show_open_period_and_a_gap(env: Env) -> None:
    env.assign(SERIAL, "--officer", "012345", "--unit", "Patrol 3",
               "--from", "2026-11-01", "--to", "2026-11-05")  # fmt: skip
    env.assign(SERIAL, "--officer", "054321", "--unit", "Traffic", "--from", "2026-11-10")
    timeline = env.json("device", "show", SERIAL)["timeline"]
    assert [(p["from"], p["to"], p["officer"]) for p in timeline] == [
        ("2026-11-01T00:00:00Z", "2026-11-05T00:00:00Z", "012345"),
        ("2026-11-05T00:00:00Z", "2026-11-10T00:00:00Z", None),  # in nobody's hands
        ("2026-11-10T00:00:00Z", None, "054321"),
    ]
    text = env.ok("device", "show", SERIAL).stdout
    assert "nobody" in text and "open" in text


# -- re-attribution of ingested recordings (R2) ---------------------------------------------------


def test_assign_and_unassign_reattribute_ingested_recordings(
    env: Env, recent_clips: list[Path], now_utc: datetime
) -> None:
    start = recent(now_utc)  # the clip's recording time, from its name
    camera = env.tmp / "camera"
    put(camera, f"DCIM/100MEDIA/{camera_name('012345', SERIAL, start, 1)}", recent_clips[0])
    ingested = env.run("ingest", str(camera), "--serial", SERIAL, "--json")
    assert ingested.exit_code == 0, ingested.output
    [rec] = env.json("list")
    assert rec["flags"] == ["unassigned_device"]
    assert rec["recorded_start"] == isoformat_utc(start)
    [device] = env.json("device", "list")
    assert device["recordings"] == 1 and device["last_docked"] is not None
    shown = env.json("device", "show", SERIAL)
    assert shown["history"] == [] and shown["timeline"] == []

    def at(hours: float) -> str:
        return isoformat_utc(start + timedelta(hours=hours))

    # An assignment that does not cover the recording time changes nothing.
    later = env.assign(SERIAL, "--officer", "054321", "--unit", "Traffic", "--from", at(1))
    assert later["reattributed"] == []
    covering = env.assign(SERIAL, "--officer", "012345", "--unit", "Patrol 3", "--number",
                          "BWC-01", "--from", at(-24), "--to", at(1))  # fmt: skip
    assert covering["reattributed"] == [rec["id"]]
    [rec] = env.json("list")
    assert (rec["officer"], rec["unit"], rec["device_number"]) == ("012345", "Patrol 3", "BWC-01")
    assert rec["flags"] == []
    text = env.ok("device", "assign", SERIAL, "--officer", "012345", "--unit", "Patrol 4",
                  "--from", at(-0.5), "--to", at(1)).stdout  # fmt: skip
    assert "1 recording(s) re-attributed" in text
    [rec] = env.json("list")
    assert rec["unit"] == "Patrol 4"
    gone = env.json("device", "unassign", SERIAL, "--from", at(-1 / 60), "--to", at(1 / 60))
    assert gone["reattributed"] == [rec["id"]]
    [rec] = env.json("list")
    assert rec["unit"] is None and "unassigned_device" in rec["flags"]


# -- the real process --------------------------------------------------------------------------


def test_real_process_exit_codes_and_messages(env: Env) -> None:
    ok = run_dockd(env.config, env.state, "device", "assign", SERIAL, "--officer", "012345",
                   "--unit", "Patrol 3", "--from", "2026-11-24", "--json", timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["assignment"]["valid_from"] == "2026-11-24T00:00:00Z"
    bad = run_dockd(env.config, env.state, "device", "assign", SERIAL, "--officer", "012345",
                    "--unit", "Patrol 3", "--to", "tomorrow", timeout=60)  # fmt: skip
    assert bad.returncode == 2
    assert "--to: not a time: 'tomorrow'" in bad.stderr and "Traceback" not in bad.stderr
    order = run_dockd(env.config, env.state, "device", "unassign", SERIAL, "--from",
                      "2026-11-25", "--to", "2026-11-24", timeout=60)  # fmt: skip
    assert order.returncode == 2 and "must be after its start" in order.stderr
    unknown = run_dockd(env.config, env.state, "device", "show", "NOPE", timeout=60)
    assert unknown.returncode == 2 and "no device 'NOPE'" in unknown.stderr
    listed = run_dockd(env.config, env.state, "device", "list", "--json", timeout=60)
    assert [d["serial"] for d in json.loads(listed.stdout)] == [SERIAL]


def test_utc_helper_errors_are_usage_errors() -> None:
    with pytest.raises(UsageError) as info:
        _utc("soon", "--from")
    assert info.value.exit_code == 2
