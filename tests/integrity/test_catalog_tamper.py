"""Every catalog fact the log records is compared with the log (DESIGN invariant 3).

One honest state, made by a real Service, holds a row in every table: five
recordings with labels, cases, holds, a gap explanation and retention states
(test_replay's history), an assignment that re-attributes them, a docking by
the daemon (udev identity, health), an interrupted and a running session, an
audit that found a damaged object (since put back), a rotated key, an export
whose disc was built and burned. Then each column `crosscheck.LOGGED` lists
is changed with raw sqlite3, as an attacker with the file would (every
trigger dropped first), and `verify` must name the row. A guard keeps
`LOGGED` and `NOT_LOGGED` naming every column of the schema, so that a new
column cannot escape the walk unnoticed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dockd.access.roles import Caller, Identity
from dockd.archive.plan import pack, parse_medium
from dockd.catalog import Catalog
from dockd.cli import cli
from dockd.clock import FixedClock, isoformat_utc, parse_utc
from dockd.config import Config, DaemonConfig, IngestConfig
from dockd.demo import gat947_name
from dockd.devices.identity import DeviceHealth, DeviceIdentity
from dockd.devices.profiles import make_profile
from dockd.integrity.chain import Problem
from dockd.integrity.columns import LOGGED, NOT_LOGGED
from dockd.runner.session import EXIT_OK, run_session
from dockd.service import Service
from tests.conftest import NOW, put
from tests.integrity.test_replay import Scenario, _make_history

FORMAT_MD = Path(__file__).resolve().parents[2] / "docs" / "FORMAT.md"
_OFFICER_ID = Identity(1000, 1000, (1000,), "officer")
OFFICER = Caller(_OFFICER_ID, frozenset({"officer"}))
SUPERVISOR = Caller(Identity(1001, 1001, (1001,), "sgt"), frozenset({"supervisor"}))


@dataclass(frozen=True)
class Facts:
    """The honest state: its config, the clock it ended at, and the rows to tamper with."""

    config: Config
    now: datetime
    history: Scenario
    assignment: int
    docked: int  # the daemon's docking of CAM2: done, with identity and health
    interrupted: int
    running: int
    old_key: str
    new_key: str
    failed: str  # the object the audit found damaged
    intact: str  # an object it found intact
    export: int
    label: str
    checkpoints: int  # how many were signed (the last one's id)
    request: int  # an approved view request
    use: int  # its opening


def _honest(root: Path, clips: list[Path]) -> Facts:
    config = dataclasses.replace(
        Config(),
        state_dir=root / "state",
        ingest=IngestConfig(change_retry_delay=0.0, min_free_bytes=0),
        daemon=DaemonConfig(runtime_dir=root / "run"),
    )
    clock = FixedClock(NOW)
    zone = config.profiles.camera_timezone
    with Service(config, clock) as svc:
        history = _make_history(svc, clock, config, root / "cam1", clips)
        r = history.r
        # Handed out before the footage was made: re-attributes CAM1's recordings.
        assignment, moved = svc.assign_device(
            "CAM1", officer="054321", unit="二中队", device_number="07",
            valid_from=NOW - timedelta(days=1), reason="issued", actor="admin",
        )  # fmt: skip
        assert sorted(moved) == sorted(r.values())
        svc.assign_device("CAM9", officer="999999", unit="三中队", actor="admin")  # never docked

        # The daemon docks CAM2: udev identity and health on the session and the device.
        cam2 = root / "cam2"
        name = gat947_name("012345", "DSJ0002", clock.now() - timedelta(hours=1), 1, zone)
        put(cam2, f"DCIM/{name}", clips[5])
        device = DeviceIdentity(
            serial="CAM2", slot="pci-0000:00:14.0-usb-0:3", devnode="/dev/sdz1",
            sys_path="/sys/devices/x", fs_type="vfat", vendor_id="2e8a", model_id="0001",
            vendor="Acme", model="BWC-2",
        )  # fmt: skip
        health = DeviceHealth(80, 1000, 2000, clock.now() + timedelta(seconds=5), clock.now())
        report = run_session(
            svc, cam2, "CAM2", make_profile("gat947", config.profiles), wipe=True,
            device=device, health=health,
        )  # fmt: skip
        assert report.exit_code == EXIT_OK

        # An export of the permanent footage, its disc built and burned.
        items = svc.export_items(tier="permanent")
        selection = {"tier": "permanent", "cases": [], "not_exported": False, "media": "dvd",
                     "copies": 1}  # fmt: skip
        created = svc.create_export(
            pack(items, parse_medium("dvd"), 1), selection,
            approved_by="Supervisor Li", reason="court order 17", actor="clerk",
        )  # fmt: skip
        (disc,) = created.discs
        images = root / "images"
        built = svc.build_disc(disc["label"], images)
        svc.burn_disc(
            disc["label"], images, "stdio:/dev/null",
            burn=lambda image, drive: None, read_back=lambda drive, size: built.sha256,
            actor="clerk",
        )  # fmt: skip

        # Access: a view asked for, approved by another, opened; a confidential mark.
        asked = svc.request_access("view", ids=[r[2]], reason="review", caller=OFFICER)
        svc.decide_request(asked.request, approve=True, note="ok", caller=SUPERVISOR)
        viewed = svc.view(asked.request, caller=OFFICER)
        [use] = svc.catalog.access_uses(asked.request)
        assert use["log_seq"] == viewed.log_entry
        svc.mark_confidential([r[2]], "privacy", reason="a minor", caller=SUPERVISOR)

        # An audit finds r5's object damaged; the file is put back afterwards.
        recs = {rec.id: rec for rec in svc.recordings()}
        failed, intact = recs[r[5]].sha256, recs[r[2]].sha256
        path = svc.store.object_path(failed)
        original = path.read_bytes()
        os.chmod(path, 0o600)
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        audit = svc.audit(fraction=1.0)
        assert failed in {f["sha256"] for f in audit.failures}
        path.write_bytes(original)
        os.chmod(path, 0o444)

        old_key = f"{svc.trusted_keys()[0].key_id:08x}"
        new_key = f"{svc.rotate_key().key_id:08x}"

        # CAM3: a docking cut short by a crash (recovered at start-up), then one in progress.
        interrupted = svc.begin_session("CAM3", "gat947", "/media/cam3", wipe=False).id
        svc.recover()
        running = svc.begin_session("CAM3", "gat947", "/media/cam3", wipe=False).id
        sessions = {row["id"]: row["state"] for row in svc.catalog.sessions()}
        docked = report.session_id
        assert (sessions[docked], sessions[interrupted], sessions[running]) == (
            "done", "interrupted", "running",
        )  # fmt: skip
        now = clock.now()
    with Service(config, clock, write=False) as reader:  # the writer signed one at close
        checkpoints = len(reader.catalog.checkpoints())
    return Facts(
        config, now, history, assignment.id, docked, interrupted, running, old_key, new_key,
        failed, intact, created.export, str(disc["label"]), checkpoints, asked.request,
        int(use["id"]),
    )  # fmt: skip


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory, clip_bank: list[Path]) -> Facts:
    return _honest(tmp_path_factory.mktemp("honest"), clip_bank)


Tamper = Callable[[str, list[Any]], list[Problem]]


@pytest.fixture
def tamper(tmp_path: Path, honest: Facts) -> Iterator[Tamper]:
    """Run SQL on a copy of the honest state (no trigger in the way); then `dockd verify` it."""
    state = tmp_path / "state"
    shutil.copytree(honest.config.state_dir, state, symlinks=True)
    config = dataclasses.replace(honest.config, state_dir=state)

    def run(sql: str, params: list[Any]) -> list[Problem]:
        conn = sqlite3.connect(state / "catalog.sqlite")
        triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for (name,) in triggers.fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        if sql:
            assert conn.execute(sql, params).rowcount == 1, sql
        conn.commit()
        conn.close()
        with Service(config, FixedClock(honest.now), write=False) as svc:
            return list(svc.verify().problems)

    yield run


# -- which row of each table is changed, and how a problem names it ---------------------


@dataclass(frozen=True)
class Target:
    where: str  # SQL condition picking exactly one row
    params: tuple[Any, ...]
    names: Callable[[dict[str, Any]], set[str]]  # the `where` of problems about that row


def _targets(f: Facts) -> dict[str, Target]:
    r = f.history.r
    return {
        "recordings": Target("id = ?", (r[2],), lambda row: {f"recording {row['id']}"}),
        "sessions": Target("id = ?", (f.docked,), lambda row: {f"session {row['id']}"}),
        "devices": Target("serial = ?", ("CAM2",), lambda row: {f"device {row['serial']}"}),
        "assignments": Target("id = ?", (f.assignment,), lambda row: {f"assignment {row['id']}"}),
        "signing_keys": Target(
            "key_id = ?", (f.old_key,), lambda row: {f"signing key {row['key_id']}"}
        ),
        "fixity": Target(
            "sha256 = ?", (f.failed,), lambda row: {f"fixity of object {row['sha256']}"}
        ),
        "exports": Target("id = ?", (f.export,), lambda row: {f"export {row['id']}"}),
        "discs": Target("label = ?", (f.label,), lambda row: {f"disc {row['label']}"}),
        "disc_items": Target("label = ?", (f.label,), lambda row: {f"disc {row['label']}"}),
        "cases": Target("no = ?", ("C1",), lambda row: {f"case {row['no']}"}),
        "case_links": Target(
            "case_no = ? AND recording_id = ?",
            ("C2", r[5]),
            lambda row: {f"case {row['case_no']}, recording {row['recording_id']}"},
        ),
        "holds": Target("id = ?", (f.history.hold_recordings,), lambda row: {f"hold {row['id']}"}),
        "hold_items": Target(
            "hold_id = ?", (f.history.hold_recordings,), lambda row: {f"hold {row['hold_id']}"}
        ),
        "access_requests": Target("id = ?", (f.request,), lambda row: {f"request {row['id']}"}),
        "access_uses": Target(
            "id = ?",
            (f.use,),
            lambda row: {f"access use {row['id']}", f"log entry {row['log_seq']}"},
        ),
        "gap_explanations": Target(
            "id = ?",
            (f.history.explanation,),
            lambda row: {f"gap explanation {row['id']}", f"gap {row['gap']}"},
        ),
    }


BOOLEAN = {"recordings.late", "fixity.last_ok"}
TIME_NAMES = {"valid_from", "valid_to", "keep_until", "pending_since", "first_seen",
              "last_docked", "recorded_start", "recorded_end", "deadline"}  # fmt: skip


def _other(column: str, value: Any, declared: str) -> Any:
    """A plausible value of the column's type that differs from `value`."""
    name = column.split(".")[1]
    if column in BOOLEAN:
        return 1 - int(value)
    if value is None:
        if declared == "INTEGER":
            return 1000
        if declared == "BLOB":
            return b"forged"
        return "2030-01-01T00:00:00Z" if name.endswith("_at") or name in TIME_NAMES else "forged"
    if isinstance(value, bytes):
        return value + b"X"
    if isinstance(value, int):
        return value + 1000  # past every id, seq and count in the state
    if value[:1] in ("[", "{"):
        decoded = json.loads(value)
        changed = [*decoded, "forged"] if isinstance(decoded, list) else {**decoded, "forged": 1}
        return json.dumps(changed, ensure_ascii=False)
    try:
        return isoformat_utc(parse_utc(value) + timedelta(seconds=1))
    except ValueError:
        return value + "X"


def _row(path: Path, table: str, target: Target) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    rows = conn.execute(f"SELECT * FROM {table} WHERE {target.where}", target.params).fetchall()
    conn.close()
    assert len(rows) == 1, (table, target.where)
    return dict(rows[0])


def _declared(path: Path, table: str) -> dict[str, str]:
    conn = sqlite3.connect(path)
    types = {row[1]: row[2] for row in conn.execute(f"PRAGMA table_info({table})")}
    conn.close()
    return types


def _assert_named(problems: list[Problem], names: set[str], what: str) -> None:
    found = [p for p in problems if p.where in names]
    assert found, f"{what}: verify named none of {sorted(names)}; it found {problems}"


# -- the honest state and the walk ---------------------------------------------------------


def test_the_honest_state_verifies_and_has_a_row_in_every_table(
    honest: Facts, tamper: Tamper
) -> None:
    assert tamper("", []) == []
    conn = sqlite3.connect(honest.config.state_dir / "catalog.sqlite")
    for table in {column.split(".")[0] for column in LOGGED}:
        assert conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] > 0, table
    (retired,) = conn.execute(
        "SELECT retired_at FROM signing_keys WHERE key_id = ?", [honest.old_key]
    ).fetchone()
    (burned,) = conn.execute(
        "SELECT burn_log_seq FROM discs WHERE label = ?", [honest.label]
    ).fetchone()
    (ok,) = conn.execute("SELECT last_ok FROM fixity WHERE sha256 = ?", [honest.failed]).fetchone()
    conn.close()
    assert retired is not None and burned is not None and ok == 0


@pytest.mark.parametrize("column", sorted(LOGGED))
def test_every_logged_column_changed_is_named_by_verify(
    column: str, honest: Facts, tamper: Tamper
) -> None:
    table, name = column.split(".")
    target = _targets(honest)[table]
    catalog = honest.config.state_dir / "catalog.sqlite"
    before = _row(catalog, table, target)
    value = _other(column, before[name], _declared(catalog, table)[name])
    assert value != before[name]
    problems = tamper(
        f"UPDATE {table} SET {name} = ? WHERE {target.where}", [value, *target.params]
    )
    after = {**before, name: value}
    _assert_named(problems, target.names(before) | target.names(after), column)


def _session(f: Facts, which: str) -> int:
    return {"docked": f.docked, "interrupted": f.interrupted, "running": f.running}[which]


# What the issue found passing, and the other ways a session's end can be rewritten.
SESSION_EDITS = [
    ("docked", "state", "running"),
    ("docked", "state", "stopped"),
    ("docked", "state", "interrupted"),
    ("interrupted", "state", "done"),
    ("interrupted", "state", "running"),
    ("running", "state", "done"),
    ("running", "state", "interrupted"),
    ("running", "ended_at", "2030-01-01T00:00:00Z"),
    ("running", "summary", "{}"),
    ("interrupted", "summary", '{"ingested": 0}'),
    ("interrupted", "ended_at", "2030-01-01T00:00:00Z"),
]


@pytest.mark.parametrize(("which", "column", "value"), SESSION_EDITS)
def test_a_sessions_state_and_end_are_compared_with_its_entries(
    which: str, column: str, value: str, honest: Facts, tamper: Tamper
) -> None:
    session = _session(honest, which)
    problems = tamper(f"UPDATE sessions SET {column} = ? WHERE id = ?", [value, session])
    _assert_named(problems, {f"session {session}"}, f"{which} session's {column} = {value}")


def test_source_path_text_is_compared_on_a_tombstone_too(honest: Facts, tamper: Tamper) -> None:
    r1 = honest.history.r[1]  # deleted by the sweep: the row and its facts stay
    problems = tamper(
        "UPDATE recordings SET source_path_text = 'DCIM/innocent.MP4' WHERE id = ?", [r1]
    )
    assert [(p.kind, p.where) for p in problems] == [("catalog_row_changed", f"recording {r1}")]
    assert "source_path_text" in problems[0].detail and "innocent" in problems[0].detail


def test_an_intact_object_marked_failed_is_found(honest: Facts, tamper: Tamper) -> None:
    problems = tamper("UPDATE fixity SET last_ok = 0 WHERE sha256 = ?", [honest.intact])
    _assert_named(problems, {f"fixity of object {honest.intact}"}, "last_ok 1 -> 0")


def test_a_current_key_marked_retired_is_found(honest: Facts, tamper: Tamper) -> None:
    problems = tamper(
        "UPDATE signing_keys SET retired_at = '2030-01-01T00:00:00Z' WHERE key_id = ?",
        [honest.new_key],
    )
    _assert_named(problems, {f"signing key {honest.new_key}"}, "retired_at set")


def _fill(text: str, f: Facts) -> str:
    return text.format(
        docked=f.docked, old_key=f.old_key, failed=f.failed, export=f.export, label=f.label,
        r2=f.history.r[2], assignment=f.assignment, last_checkpoint=f.checkpoints,
    )  # fmt: skip


# Rows removed (or added) behind the service's back: the log still has them (or not).
REMOVALS = [
    ("DELETE FROM sessions WHERE id = {docked}", "session {docked}"),
    ("DELETE FROM devices WHERE serial = 'CAM9'", "device CAM9"),
    ("DELETE FROM signing_keys WHERE key_id = '{old_key}'", "signing key {old_key}"),
    ("DELETE FROM fixity WHERE sha256 = '{failed}'", "fixity of object {failed}"),
    ("DELETE FROM exports WHERE id = {export}", "export {export}"),
    ("DELETE FROM discs WHERE label = '{label}'", "disc {label}"),
    ("INSERT INTO devices (serial, first_seen) VALUES ('MALLORY', '2026-11-25T00:00:00Z')",
     "device MALLORY"),
    ("INSERT INTO disc_items (label, recording_id) VALUES ('E9D9C9_X', 1)", "disc E9D9C9_X"),
    # Values no writer stores: reported, and the rest of the check still runs.
    ("UPDATE recordings SET flags = 'not json' WHERE id = {r2}", "recording {r2}"),
    ("UPDATE recordings SET source_path = 'text, not bytes' WHERE id = {r2}", "recording {r2}"),
    ("UPDATE assignments SET valid_from = 'yesterday' WHERE id = {assignment}",
     "assignment {assignment}"),
    ("UPDATE cases SET parties = 'Zhang San' WHERE no = 'C1'", "case C1"),
    # Not in the log, but checked against the signed note: the key that signed it.
    ("UPDATE checkpoints SET key_id = '{old_key}' WHERE id = (SELECT MAX(id) FROM checkpoints)",
     "checkpoint {last_checkpoint}"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "where"), REMOVALS)
def test_a_row_removed_added_or_unreadable_is_found(
    sql: str, where: str, honest: Facts, tamper: Tamper
) -> None:
    problems = tamper(_fill(sql, honest), [])
    _assert_named(problems, {_fill(where, honest)}, sql)
    # About that row only: no cascade of problems over the rest of the catalog.
    assert len({p.where for p in problems}) < 5, problems


def test_verify_reads_the_catalog_in_one_snapshot(tmp_path: Path, honest: Facts) -> None:
    """The daemon docks a camera while `dockd verify` reads: the new session's row and its
    entry are both seen or both not, never a row without its entry."""
    state = tmp_path / "state"
    shutil.copytree(honest.config.state_dir, state, symlinks=True)
    config = dataclasses.replace(honest.config, state_dir=state)
    clock = FixedClock(honest.now)
    with Service(config, clock, write=False) as reader, Service(config, clock) as writer:
        read_sessions = reader.catalog.sessions

        def sessions_while_docking() -> list[dict[str, Any]]:
            writer.begin_session("CAM4", "gat947", "/media/cam4", wipe=False)
            return read_sessions()

        reader.catalog.sessions = sessions_while_docking  # type: ignore[method-assign]
        assert reader.verify().problems == ()
        reader.catalog.sessions = read_sessions  # type: ignore[method-assign]
        assert "CAM4" in {row["device_serial"] for row in reader.catalog.sessions()}
        assert reader.verify().problems == ()


# -- the guard: no column escapes --------------------------------------------------------


def _schema_columns(tmp_path: Path) -> set[str]:
    catalog = Catalog(tmp_path / "fresh.sqlite")  # every migration applied
    tables = [
        str(name)
        for (name,) in catalog.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    columns = {
        f"{table}.{row[1]}"
        for table in tables
        for row in catalog.db.execute(f"PRAGMA table_info({table})")
    }
    catalog.close()
    return columns


def test_every_catalog_column_is_either_compared_with_the_log_or_said_not_to_be(
    tmp_path: Path,
) -> None:
    """A new column must be added to crosscheck.LOGGED (and so to the walk above, and to
    a check) or to NOT_LOGGED with the reason the log cannot vouch for it."""
    columns = _schema_columns(tmp_path)
    assert not set(LOGGED) & set(NOT_LOGGED)
    assert sorted(columns - set(LOGGED) - set(NOT_LOGGED)) == [], "neither LOGGED nor NOT_LOGGED"
    assert sorted((set(LOGGED) | set(NOT_LOGGED)) - columns) == [], "no such column any more"


def test_format_md_lists_the_columns_the_log_does_not_record() -> None:
    """docs/FORMAT.md says what `dockd verify` cannot compare, in the same words as the code."""
    text = FORMAT_MD.read_text("utf-8")
    section = text[text.index("### What `dockd verify` compares") :]
    section = section[: section.find("\n## ")]
    listed = set(re.findall(r"`([a-z_]+\.[a-z_0-9]+)`", section))
    unlogged = {c for c in NOT_LOGGED if not c.startswith(("log.", "merkle_nodes."))}
    assert sorted(unlogged - listed) == []


# -- through the command line, as the issue found it ---------------------------------------


def test_dockd_verify_names_an_edited_source_name_and_session_state(
    tmp_path: Path, clip_bank: list[Path]
) -> None:
    """The real CLI (real clock: footage dated from now) after `dockd ingest`."""
    cfg = tmp_path / "dockd.toml"
    cfg.write_text("[ingest]\nchange_retry_delay = 0\nmin_free_bytes = 0\n")
    base = ["--config", str(cfg), "--state-dir", str(tmp_path / "state")]
    zone = Config().profiles.camera_timezone
    start = datetime.now(UTC) - timedelta(hours=3)
    put(tmp_path / "cam", f"DCIM/{gat947_name('012345', 'DSJ0001', start, 1, zone)}", clip_bank[0])
    ingested = CliRunner().invoke(cli, [*base, "ingest", str(tmp_path / "cam"), "--serial", "CAM1"])
    assert ingested.exit_code == 0, ingested.output
    assert CliRunner().invoke(cli, [*base, "verify"]).exit_code == 0

    conn = sqlite3.connect(tmp_path / "state" / "catalog.sqlite")
    conn.execute("UPDATE recordings SET source_path_text = 'DCIM/other.MP4' WHERE id = 1")
    conn.execute("UPDATE sessions SET state = 'stopped' WHERE id = 1")
    conn.commit()
    conn.close()
    result = CliRunner().invoke(cli, [*base, "verify", "--json"])
    assert result.exit_code == 1
    found = {(p["kind"], p["where"]) for p in json.loads(result.output)["problems"]}
    assert found == {("catalog_row_changed", "recording 1"), ("catalog_row_changed", "session 1")}


def test_the_walk_changes_values_within_their_type() -> None:
    """What the walk writes is what an attacker would: a time stays a time, JSON stays JSON."""
    assert _other("recordings.recorded_start", "2026-11-25T03:00:00Z", "TEXT") == (
        "2026-11-25T03:00:01Z"
    )
    assert json.loads(_other("recordings.parties", '["张三"]', "TEXT")) == ["张三", "forged"]
    assert _other("recordings.late", 0, "INTEGER") == 1
    assert _other("recordings.keep_until", None, "TEXT") == "2030-01-01T00:00:00Z"
