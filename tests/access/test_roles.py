"""Who may do what: the permission table against every operation and every role,
through the daemon's real socket, the callers made by `setpriv` as other uids and
groups (SO_PEERCRED / SO_PEERGROUPS tell the daemon who they are)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockd.access.roles import (
    CONFIDENTIAL,
    EVERYONE,
    PERMISSIONS,
    ROLES,
    Identity,
    check,
    gids_of,
    roles_of,
)
from dockd.clock import FixedClock
from dockd.config import AccessConfig, Config, DaemonConfig
from dockd.errors import NotPermitted
from dockd.integrity.chain import LogEntry
from dockd.runner.daemon import Daemon
from dockd.runner.operations import OPERATIONS
from dockd.service import Service
from tests.runner.api_server import ApiServer
from tests.runner.test_daemon import RecordingNotifier
from tests.test_service_retention import Shot, at, dock

# One group per role (and the confidential grant), by number: no accounts needed.
GID = {role: 7001 + i for i, role in enumerate((*ROLES, CONFIDENTIAL))}
ACCESS = AccessConfig(**{role: (str(gid),) for role, gid in GID.items()})
UID = {role: 3001 + i for i, role in enumerate(ROLES)}
NOBODY = 3999  # a uid with no role at all
TABLE_REFUSAL = "not permitted to"


def test_the_permission_table_names_every_operation() -> None:
    assert set(PERMISSIONS) == set(OPERATIONS)
    assert all(roles <= EVERYONE for roles in PERMISSIONS.values())


def test_roles_come_from_groups_by_number_or_name() -> None:
    who = Identity(3001, 3001, (3001, GID["clerk"], GID["auditor"]))
    assert roles_of(who, ACCESS) == {"clerk", "auditor"}
    assert roles_of(Identity(0, 0), ACCESS) == EVERYONE | {CONFIDENTIAL}
    named = AccessConfig(clerk=("records", "7777"))
    assert gids_of(named.clerk, {"records": 4242}.get) == {4242, 7777}
    assert roles_of(Identity(5, 5, (4242,)), named, {"records": 4242}.get) >= {"clerk"}
    assert roles_of(Identity(5, 5, (1,)), named, lambda name: None) == frozenset()


def test_a_refusal_names_the_role_it_needs() -> None:
    clerk = Identity(3002, 3002, (GID["clerk"],), "clerk")
    message = "retention.sweep: not permitted to clerk(3002): it needs the role admin (held: clerk)"
    with pytest.raises(NotPermitted, match=re.escape(message)) as refused:
        check("retention.sweep", clerk, frozenset({"clerk"}))
    assert refused.value.exit_code == 5
    check("tag", clerk, frozenset({"clerk"}))  # allowed: no error
    check("retention.sweep", Identity(0, 0), frozenset())  # root may


@pytest.fixture
def served(
    config: Config, clock: FixedClock, tmp_path: Path, reachable: Path
) -> Iterator[tuple[Daemon, Path]]:
    """A daemon's handler on a real socket that other uids can reach (a test's 0666)."""
    cfg = dataclasses.replace(
        config, access=ACCESS, daemon=DaemonConfig(runtime_dir=tmp_path / "run")
    )
    daemon = Daemon(cfg, clock=clock, udev=False, notifier=RecordingNotifier())
    service = daemon.service = Service(cfg, clock)
    socket = reachable / "dockd.sock"
    api = ApiServer(socket, daemon.handle, group="no-such-group-here")
    api.start()
    os.chmod(socket, 0o666)
    try:
        yield daemon, socket
    finally:
        api.stop()
        if daemon._scheduler is not None:
            daemon._scheduler.shutdown(wait=True)
        service.close()


# Asks for each op named on the command line (no arguments) and prints what came back.
_CLIENT = """
import json, sys
from dockd.runner.client import request
from dockd.errors import DockdError
found = {}
for op in sys.argv[2:]:
    try:
        request(sys.argv[1], op, {}, timeout=120)
        found[op] = [0, ""]
    except DockdError as exc:
        found[op] = [exc.exit_code, str(exc)]
print(json.dumps(found))
"""


def _ask_as(uid: int, groups: list[int], socket: Path, ops: list[str]) -> dict[str, Any]:
    primary, *others = groups or [uid]
    argv = ["setpriv", f"--reuid={uid}", f"--regid={primary}",
            f"--groups={','.join(map(str, others or [primary]))}",
            sys.executable, "-c", _CLIENT, str(socket), *ops]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def _state(service: Service) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows but the log's and what grows with it (the tree's nodes)."""
    db = sqlite3.connect(service.catalog.path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        skip = {"log", "nodes", "tree_nodes", "merkle_nodes"}
        return {
            t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
            for t in tables
            if t not in skip and not t.startswith("sqlite_")
        }
    finally:
        db.close()


def _denied(service: Service) -> list[dict[str, Any]]:
    rows = service.catalog.log_rows()
    return [e.data for e in (LogEntry.from_bytes(r.raw) for r in rows) if e.kind == "access.denied"]


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root, setpriv")
def test_every_operation_for_every_role_through_the_socket(served: tuple[Daemon, Path]) -> None:
    daemon, socket = served
    service = daemon.service
    assert service is not None
    people = {role: (UID[role], [GID[role]]) for role in ROLES}
    people["nobody"] = (NOBODY, [NOBODY])

    # Refusals first: each changes nothing but the log, where it is one access.denied.
    before = _state(service)
    expected_denials = []
    for role, (uid, groups) in people.items():
        refused_ops = sorted(op for op in OPERATIONS if role not in PERMISSIONS[op])
        found = _ask_as(uid, groups, socket, refused_ops)
        for op in refused_ops:
            code, message = found[op]
            assert code == 5 and TABLE_REFUSAL in message, (role, op, found[op])
            wanted = sorted(PERMISSIONS[op])
            assert message.endswith(")") and all(r in message for r in wanted), message
            expected_denials.append((op, uid))
    assert _state(service) == before
    denied = _denied(service)
    assert sorted((d["op"], d["uid"]) for d in denied) == sorted(expected_denials)
    assert all(d["by"].endswith(f"({d['uid']})") and d["needs"] for d in denied)

    # Then what each role may do: the table lets it through (the request itself may
    # still be refused for its empty arguments, never by the table).
    for role, (uid, groups) in people.items():
        allowed = sorted(op for op in OPERATIONS if role in PERMISSIONS[op])
        found = _ask_as(uid, groups, socket, allowed)
        for op in allowed:
            code, message = found[op]
            assert not (code == 5 and TABLE_REFUSAL in message), (role, op, message)
    assert len(_denied(service)) == len(expected_denials)  # nothing more was refused


_ASK = """
import json, sys
from dockd.runner.client import request
from dockd.errors import DockdError
try:
    print(json.dumps([0, request(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), timeout=120)]))
except DockdError as exc:
    print(json.dumps([exc.exit_code, str(exc)]))
"""


def _one(uid: int, gid: int, socket: Path, op: str, args: dict[str, Any]) -> tuple[int, Any]:
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", f"--groups={gid}",
            sys.executable, "-c", _ASK, str(socket), op, json.dumps(args)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    code, result = json.loads(done.stdout)
    return code, result


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root, setpriv")
def test_request_approve_view_and_copy_as_two_people_through_the_socket(
    served: tuple[Daemon, Path], reachable: Path, tmp_path: Path
) -> None:
    daemon, socket = served
    service = daemon.service
    assert service is not None
    cam = tmp_path / "cam"
    [rec] = dock(service, cam, "CAM1", [Shot(at(1), b"\x01" * 4096, 1)])
    officer, supervisor = (UID["officer"], GID["officer"]), (UID["supervisor"], GID["supervisor"])
    code, asked = _one(*officer, socket, "request.create",
                       {"kind": "copy", "ids": [rec.id], "reason": "court"})  # fmt: skip
    assert code == 0 and asked["requested_by"] == f"uid({UID['officer']})"
    code, own = _one(*supervisor, socket, "request.create",
                     {"kind": "view", "ids": [rec.id], "reason": "mine"})  # fmt: skip
    code, refused = _one(*supervisor, socket, "request.approve",
                         {"request": own["request"], "note": "self"})  # fmt: skip
    assert code == 5 and "four eyes" in refused
    code, approved = _one(*supervisor, socket, "request.approve",
                          {"request": asked["request"], "note": "ok"})  # fmt: skip
    assert code == 0 and approved["decided_by"] == f"uid({UID['supervisor']})"
    # The daemon writes only into its outbox, never where a caller points it: the
    # package is in <runtime>/out/<uid>/, handed to the officer (their CLI moves it).
    elsewhere = reachable / "etc-passwd-here"
    code, copied = _one(*officer, socket, "access.copy",
                        {"request": asked["request"], "out": str(elsewhere)})  # fmt: skip
    assert code == 0, copied
    assert not elsewhere.exists()
    made = Path(copied["package"]["out"])
    outbox = daemon.config.daemon.runtime_dir / "out" / str(UID["officer"])
    assert made.parent == outbox and oct(outbox.stat().st_mode & 0o777) == "0o711"
    assert outbox.stat().st_uid == 0  # the daemon's: it removes the emptied folders
    assert {p.stat().st_uid for p in [made, *made.rglob("*")]} == {UID["officer"]}
    # The supervisor's own view: refused to the officer, who did not ask for it.
    code, other = _one(*officer, socket, "access.view", {"request": own["request"]})
    assert code == 5 and "a grant is for the one who asked" in other


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root, setpriv")
def test_a_supervisor_reads_the_compliance_report_through_the_daemon(
    served: tuple[Daemon, Path],
) -> None:
    # Not root: the state directory is closed to them; the daemon's API is not.
    _, socket = served
    code, result = _one(UID["supervisor"], GID["supervisor"], socket, "report.compliance",
                        {"format": "csv"})  # fmt: skip
    assert code == 0, result
    assert result["csv"].startswith("\ufeffunit,recordings,") and "\nTOTAL," in result["csv"]
    code, page = _one(UID["auditor"], GID["auditor"], socket, "report.compliance",
                      {"format": "html", "lang": "en"})  # fmt: skip
    assert code == 0 and "No recordings in this period." in page["html"]  # an empty dock
    code, message = _one(UID["officer"], GID["officer"], socket, "report.compliance", {})
    assert code == 5 and TABLE_REFUSAL in message
