"""Requests, four eyes, grants that end, confidential marks, views and copies (R6).

Against a real Service on a real state directory, with an injected clock;
the people are Callers as the daemon builds them from the socket's peer.
The copy package and the scoped log export are checked with their own
verify.py in a Python that has only `cryptography`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from dockd.access.roles import Caller, Identity, roles_of
from dockd.clock import FixedClock
from dockd.config import AccessConfig, Config, DaemonConfig
from dockd.errors import NotPermitted, UsageError
from dockd.integrity.chain import LogEntry
from dockd.runner.operations import Host, perform
from dockd.service import Service
from tests.conftest import NOW
from tests.fresh_python import bare_env
from tests.test_service_retention import Shot, at, dock, quick

ACCESS = AccessConfig(
    officer=("6001",), clerk=("6003",), supervisor=("6002",), confidential=("6007",)
)


def person(uid: int, *groups: int, name: str) -> Caller:
    who = Identity(uid, uid, (uid, *groups), name)
    return Caller(who, roles_of(who, ACCESS))


ALICE = person(1000, 6001, name="alice")  # officer
BOB = person(1001, 6002, name="bob")  # supervisor
CAROL = person(1002, 6002, 6007, name="carol")  # supervisor with the confidential grant
DAVE = person(1003, 6001, name="dave")  # another officer

OTHER_PARTY = "王五-另案当事人"


@pytest.fixture
def svc(config: Config, clock: FixedClock, tmp_path: Path) -> Iterator[Service]:
    cfg = dataclasses.replace(
        quick(config), access=ACCESS, daemon=DaemonConfig(runtime_dir=tmp_path / "run")
    )
    with Service(cfg, clock) as service:
        yield service


@pytest.fixture
def ids(svc: Service, tmp_path: Path) -> list[int]:
    """Four recordings: 1 and 2 of case A-1, 3 of case B-2 (another party), 4 of none."""
    shots = [Shot(at(1, m), os.urandom(2000) + bytes([m]), m + 1) for m in range(4)]
    recs = dock(svc, tmp_path / "cam", "CAM1", shots)
    found = [r.id for r in recs]
    svc.create_case("A-1", cause="无照经营", parties=("李四",), actor="sgt")
    svc.link_case("A-1", found[:2], actor="sgt")
    svc.create_case("B-2", cause="另案", parties=(OTHER_PARTY,), actor="sgt")
    svc.link_case("B-2", [found[2]], actor="sgt")
    svc.checkpoint()
    return found


def entries(svc: Service, kind: str) -> list[LogEntry]:
    found = [LogEntry.from_bytes(row.raw) for row in svc.catalog.log_rows()]
    return [e for e in found if e.kind == kind]


def approved(svc: Service, kind: str, ids: list[int], **extra: object) -> int:
    asked = svc.request_access(kind, ids=ids, reason="court", caller=ALICE, **extra)  # type: ignore[arg-type]
    svc.decide_request(asked.request, approve=True, note="ok", caller=BOB)
    return asked.request


def test_a_request_is_decided_once_by_someone_else(svc: Service, ids: list[int]) -> None:
    asked = svc.request_access("view", ids=ids[:1], reason="复核", caller=BOB)
    assert asked.state == "pending" and asked.requested_by == "bob(1001)"
    with pytest.raises(NotPermitted, match="four eyes") as own:
        svc.decide_request(asked.request, approve=True, note="mine", caller=BOB)
    assert own.value.exit_code == 5
    assert svc.access_request(asked.request).state == "pending"  # nothing changed
    done = svc.decide_request(asked.request, approve=True, note="ok", caller=CAROL)
    assert done.state == "approved" and done.decided_by == "carol(1002)"
    assert done.expires_at == "2026-12-02T09:00:00Z"  # NOW + access.approval_days (7)
    with pytest.raises(UsageError, match="decided once"):
        svc.decide_request(asked.request, approve=False, note="no", caller=CAROL)
    [logged] = entries(svc, "access.approved")
    assert logged.data["by"] == "carol(1002)" and logged.data["recordings"] == ids[:1]


def test_root_requester_and_root_approver_are_told_apart_by_login(
    svc: Service, ids: list[int]
) -> None:
    root = Identity(0, 0, (0,), "root")
    alice_root = Caller(dataclasses.replace(root, login="alice"), roles_of(root, ACCESS))
    bob_root = Caller(dataclasses.replace(root, login="bob"), roles_of(root, ACCESS))
    asked = svc.request_access("view", ids=ids[:1], reason="x", caller=alice_root)
    assert asked.requested_by == "root(0) via sudo by alice"
    with pytest.raises(NotPermitted, match="four eyes"):
        svc.decide_request(asked.request, approve=True, note="x", caller=alice_root)
    assert svc.decide_request(asked.request, approve=True, note="x", caller=bob_root).state == (
        "approved"
    )


def test_an_expired_approval_is_refused(svc: Service, ids: list[int], clock: FixedClock) -> None:
    asked = svc.request_access("view", ids=ids[:1], reason="x", caller=ALICE)
    svc.decide_request(
        asked.request, approve=True, note="ok", until=NOW + timedelta(hours=1), caller=BOB
    )
    assert svc.view(asked.request, caller=ALICE).files
    clock.current = NOW + timedelta(hours=2)
    assert svc.access_request(asked.request).state == "expired"
    with pytest.raises(NotPermitted, match="ended at 2026-11-25T10:00:00Z"):
        svc.view(asked.request, caller=ALICE)
    # The folder of the ended grant goes at the next sweep of views.
    assert [Path(p).name for p in svc.close_ended_views()] == [str(asked.request)]
    assert len(entries(svc, "access.viewed")) == 1


def test_a_grant_is_its_requesters_only(svc: Service, ids: list[int]) -> None:
    request = approved(svc, "view", ids[:1])
    with pytest.raises(NotPermitted, match="alice\\(1000\\)'s"):
        svc.view(request, caller=DAVE)
    with pytest.raises(UsageError, match="is for view, not copy"):
        svc.copy(request, Path("/nonexistent/x"), caller=ALICE)
    refused = svc.request_access("view", ids=ids[:1], reason="x", caller=ALICE)
    svc.decide_request(refused.request, approve=False, note="no need", caller=BOB)
    with pytest.raises(NotPermitted, match="is refused, not approved"):
        svc.view(refused.request, caller=ALICE)


def test_a_view_is_a_readonly_copy_of_the_store(svc: Service, ids: list[int]) -> None:
    request = approved(svc, "view", ids[:2])
    opened = svc.view(request, caller=ALICE, ids=[ids[1]])
    [name] = opened.files
    recording = svc.recording(ids[1])
    assert recording is not None
    path = Path(name)
    assert path.read_bytes() == svc.store.object_path(recording.sha256).read_bytes()
    assert oct(path.stat().st_mode & 0o777) == "0o400"
    # The folder stays the daemon's and enter-only; the file is the requester's alone.
    assert oct(path.parent.stat().st_mode & 0o777) == "0o711"
    assert path.stat().st_uid == 1000 and path.parent.stat().st_uid == os.getuid()
    assert path.parent == svc.config.daemon.runtime_dir / "view" / "1000" / str(request)
    with pytest.raises(NotPermitted, match="does not cover recordings 3"):
        svc.view(request, caller=ALICE, ids=[ids[2]])
    [viewed] = entries(svc, "access.viewed")
    assert viewed.data["recordings"] == [ids[1]] and viewed.data["by"] == "alice(1000)"


def test_confidential_recordings_never_go_to_a_party(svc: Service, ids: list[int]) -> None:
    svc.mark_confidential(ids[:1], "privacy", reason="minor", caller=BOB)
    with pytest.raises(NotPermitted, match="confidential: a party's copy"):
        svc.request_access("copy", ids=ids[:2], reason="x", for_party="李四", caller=ALICE)
    # Marked after the request: refused at the approval, and at the copy.
    asked = svc.request_access("copy", ids=[ids[1]], reason="x", for_party="李四", caller=ALICE)
    svc.mark_confidential([ids[1]], "commercial_secret", reason="trade", caller=BOB)
    with pytest.raises(NotPermitted, match="confidential"):
        svc.decide_request(asked.request, approve=True, note="ok", caller=CAROL)
    # Internal: only an approver with the confidential grant.
    inside = svc.request_access("copy", ids=ids[:1], reason="internal review", caller=ALICE)
    with pytest.raises(NotPermitted, match="confidential grant"):
        svc.decide_request(inside.request, approve=True, note="ok", caller=BOB)
    svc.decide_request(inside.request, approve=True, note="ok", caller=CAROL)
    marks = entries(svc, "recording.confidential")
    assert [m.data["level"] for m in marks] == ["privacy", "commercial_secret"]
    assert svc.recording(ids[0]).confidential == "privacy"  # type: ignore[union-attr]
    svc.mark_confidential(ids[:1], None, reason="no longer", caller=BOB)
    assert svc.recording(ids[0]).confidential is None  # type: ignore[union-attr]


def folder_of(caller: Caller, tmp_path: Path) -> Path:
    """A folder `caller` owns (the daemon, as root, writes only into such)."""
    folder = tmp_path / f"home-{caller.identity.uid}"
    folder.mkdir(exist_ok=True)
    os.chown(folder, caller.identity.uid, caller.identity.gid)
    return folder


def _grep(folder: Path, text: str) -> list[str]:
    needle = text.encode("utf-8")
    return [str(p) for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_party_copy_verifies_alone_and_holds_nothing_of_another_case(
    svc: Service, ids: list[int], tmp_path: Path, fresh_python: Path
) -> None:
    asked = svc.request_access(
        "copy", case="A-1", reason="当事人申请", for_party="李四", caller=ALICE
    )
    assert asked.recordings == tuple(ids[:2])
    svc.decide_request(asked.request, approve=True, note="同意", caller=BOB)
    out = folder_of(ALICE, tmp_path) / "package"
    copied = svc.copy(asked.request, out, caller=ALICE)
    assert copied.for_party == "李四"
    # Handed to alice: every file of the package is hers.
    assert {p.stat().st_uid for p in [out, *out.rglob("*")]} == {1000}
    done = subprocess.run(
        [str(fresh_python), "verify.py"], cwd=out, env=bare_env(), capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("OK")
    # Nothing about case B-2 (its party, its cause) is in it; case A-1's party is.
    assert _grep(out, OTHER_PARTY) == [] and _grep(out, "另案") == []
    assert _grep(out, "李四") and copied.package.entries > 0
    [logged] = entries(svc, "access.copied")
    assert logged.data["package_sha256"] == copied.package.package_sha256
    assert logged.data["for_party"] == "李四"
    kept = Path(copied.package.kept)
    assert json.loads((kept / "copy.json").read_text("utf-8"))["package_sha256"] == (
        copied.package.package_sha256
    )
    # Tampering with a file of the package is found by its verify.py.
    victim = next(p for p in (out / "data").rglob("*") if p.is_file())
    victim.chmod(0o644)
    victim.write_bytes(b"changed")
    again = subprocess.run(
        [str(fresh_python), "verify.py"], cwd=out, env=bare_env(), capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert again.returncode == 1, again.stdout


def test_a_scoped_log_export_verifies_and_holds_nothing_of_another_case(
    svc: Service, ids: list[int], tmp_path: Path, fresh_python: Path
) -> None:
    out = tmp_path / "scoped"
    result = svc.export_log_scoped(out, case="A-1", recordings=())
    assert result.recordings == tuple(ids[:2])
    done = subprocess.run(
        [str(fresh_python), "verify.py"], cwd=out, env=bare_env(), capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not that the log holds no other" in done.stdout
    assert _grep(out, OTHER_PARTY) == [] and _grep(out, "另案") == []
    kinds = [json.loads(line)["kind"] for line in (out / "entries.jsonl").read_text().splitlines()]
    assert kinds.count("recording.ingested") == 2 and "case.created" in kinds
    # An entry dropped from the export with its proof kept is found.
    lines = (out / "entries.jsonl").read_text().splitlines(keepends=True)
    (out / "entries.jsonl").write_text("".join(lines[1:]))
    dropped = subprocess.run(
        [str(fresh_python), "verify.py"], cwd=out, env=bare_env(), capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert dropped.returncode == 1 and "missing" in dropped.stdout


def test_custody_shows_every_grant_and_access(svc: Service, ids: list[int], tmp_path: Path) -> None:
    request = approved(svc, "view", ids[:1])
    svc.view(request, caller=ALICE)
    copy_request = approved(svc, "copy", ids[:1])
    svc.copy(copy_request, folder_of(ALICE, tmp_path) / "c", caller=ALICE)
    svc.log_denied("retention.sweep", DAVE, ["admin"], "not permitted", recordings=[ids[0]])
    svc.audit(fraction=1.0)  # re-hashes every object: each recording's custody shows it
    svc.checkpoint()
    report = svc.custody([ids[0]])
    kinds = [e.kind for e in report.events]
    for kind in ("recording.ingested", "case.linked", "access.requested", "access.approved",
                 "access.viewed", "access.copied", "access.denied", "audit.done"):  # fmt: skip
        assert kind in kinds, kind
    assert all(e.in_checkpoint for e in report.events)
    assert all(e.by for e in report.events if e.kind.startswith("access."))
    denied = next(e for e in report.events if e.kind == "access.denied")
    assert "retention.sweep" in denied.what_en and denied.by == "dave(1003)"
    # Nothing about the other case's recording.
    assert not any(ids[2] in e.recordings for e in report.events)
    assert all("B-2" not in e.what_en for e in report.events)


def _verify_kinds(svc: Service) -> list[str]:
    return [p.kind for p in svc.verify().problems]


def test_verify_replays_requests_decisions_and_uses(
    svc: Service, ids: list[int], tmp_path: Path
) -> None:
    request = approved(svc, "view", ids[:1])
    svc.view(request, caller=ALICE)
    pending = svc.request_access("copy", ids=ids[:1], reason="x", caller=ALICE)
    svc.mark_confidential([ids[3]], "state_secret", reason="x", caller=BOB)
    assert _verify_kinds(svc) == []
    db = sqlite3.connect(svc.catalog.path)
    with db:
        # A forged approval: the row says approved, no entry says so.
        db.execute(
            "UPDATE access_requests SET state = 'approved', decided_by = 'bob(1001)', "
            f"expires_at = '2099-01-01T00:00:00Z' WHERE id = {pending.request}"
        )
        # A request no one asked for, and a mark taken off behind the log's back.
        db.execute(
            "INSERT INTO access_requests (id, kind, recordings, reason, requested_by, "
            "requested_uid, requested_at, log_seq, state) "
            "VALUES (99, 'copy', '[3]', 'x', 'mallory(6666)', 6666, '2026-11-25T09:00:00Z', 1, "
            "'pending')"
        )
        db.execute(f"UPDATE recordings SET confidential = NULL WHERE id = {ids[3]}")
        db.execute("DROP TRIGGER access_uses_no_delete")
        db.execute("DELETE FROM access_uses")
    db.close()
    found = _verify_kinds(svc)
    assert sorted(found) == sorted(
        ["access_decision_unlogged", "access_request_unlogged", "confidential_changed",
         "access_use_missing"]
    ), found  # fmt: skip


def test_without_the_daemon_only_root_may_ask(svc: Service, ids: list[int]) -> None:
    with pytest.raises(NotPermitted, match="only root") as refused:
        perform(Host(svc, caller=ALICE), "request.create", {"kind": "view", "ids": ids}, None)
    assert refused.value.exit_code == 5
    assert entries(svc, "access.requested") == []
