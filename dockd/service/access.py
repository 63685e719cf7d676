"""Access (R6): requests, four-eyes decisions, views, copies, confidential marks, refusals.

Viewing and copying need the approval of the unit's head (002 Art. 20, 004
Art. 18); parties may get copies with the head's consent, except what must
stay confidential (001 Art. 28, 004 Art. 19; 001 Art. 29); copies given out
are made centrally and a copy kept (004 Art. 17). So:

- a request names recordings (ids, or a case: its recordings when asked),
  a kind (view, copy, export), a reason, optionally a party and an end;
- a supervisor who is not the requester approves or refuses it, once; an
  approval lasts until its `expires_at` (default access.approval_days);
  a recording marked confidential needs an approver with the confidential
  grant, and is never in a party's copy;
- only the requester uses the grant, while it lasts: a view opens read-only
  copies in a folder of theirs that dockd removes when the grant ends; a
  copy writes a self-verifying package (Exports.write_copy_package) and
  the dock keeps its record;
- every step is one log entry (access.requested / approved / refused /
  viewed / copied, recording.confidential), and so is every refusal by the
  permission table (access.denied), so that `dockd custody` and an outsider
  with the log see every grant and every access.

Which role may ask for which operation is the table's business
(access/roles.py, checked by the front); this module checks what depends on
the request itself: who asked, who decides, what is confidential, until when.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from dockd.access.roles import CONFIDENTIAL, Caller
from dockd.catalog import Recording
from dockd.clock import isoformat_utc, parse_utc
from dockd.errors import NotPermitted, UsageError
from dockd.service.base import ServiceBase, _clean
from dockd.service.results import AccessRequest, Copied, Marked, Viewed
from dockd.service.values import IntegrityError
from dockd.store import hash_file

log = structlog.get_logger("dockd.service")

KINDS = ("view", "copy", "export")
LEVELS = ("state_secret", "commercial_secret", "privacy")
RULE = "002 Art. 20, 004 Art. 18"


class Access(ServiceBase):
    """Requests and approvals, views and copies, confidential marks, refusals."""

    # -- requests and decisions ---------------------------------------------------------

    def request_access(
        self,
        kind: str,
        *,
        ids: Sequence[int] = (),
        case: str | None = None,
        reason: str,
        for_party: str | None = None,
        until: datetime | None = None,
        caller: Caller,
    ) -> AccessRequest:
        """Ask to view, copy or export recordings (`ids`, or `case`'s); pending until decided."""
        if kind not in KINDS:
            raise UsageError(f"kind: {kind!r} is not one of {', '.join(KINDS)}", field="kind")
        reason = _clean(reason, "reason")
        party = _clean(for_party, "for_party") if for_party is not None else None
        if party is not None and kind != "copy":
            raise UsageError("only a copy is made for a party", field="for_party")
        now = self.clock.now()
        if until is not None and until <= now:
            raise UsageError(f"until: {isoformat_utc(until)} has passed", field="until")
        if bool(ids) == (case is not None):
            raise UsageError("a request names either recording ids or a case")
        if case is not None:
            if self.catalog.case(case) is None:
                raise UsageError(f"no case {case!r}")
            ids = sorted({int(link["recording_id"]) for link in self.catalog.case_links(case)})
            if not ids:
                raise UsageError(f"case {case} has no recordings")
        recordings = self._live(list(ids))
        if party is not None:
            self._refuse_confidential_for_party(recordings)
        with self.catalog.transaction():
            request_id = self.catalog.next_id("access_requests")
            data = {
                "request": request_id,
                "action": kind,
                "recordings": [r.id for r in recordings],
                "case": case,
                "reason": reason,
                "for_party": party,
                "until": isoformat_utc(until) if until else None,
                "by": caller.actor,
                "uid": caller.identity.uid,
            }
            entry = self._log("access.requested", data, now)
            self.catalog.insert_request(
                {
                    "id": request_id,
                    "kind": kind,
                    "recordings": data["recordings"],
                    "case_no": case,
                    "reason": reason,
                    "for_party": party,
                    "until": data["until"],
                    "requested_by": caller.actor,
                    "requested_uid": caller.identity.uid,
                    "requested_at": entry.time,
                    "log_seq": entry.seq,
                    "state": "pending",
                }
            )
        log.info("access.requested", request=request_id, kind=kind, by=caller.actor)
        return self.access_request(request_id)

    def decide_request(
        self,
        request_id: int,
        *,
        approve: bool,
        note: str,
        until: datetime | None = None,
        caller: Caller,
    ) -> AccessRequest:
        """Approve or refuse a pending request: never its requester's own (four eyes)."""
        row = self._request_row(request_id)
        note = _clean(note, "note" if approve else "reason")
        if row["state"] != "pending":
            raise UsageError(f"request {request_id} is {row['state']} already: it is decided once")
        if self._asked_by(row, caller):
            raise NotPermitted(
                f"request {request_id} is yours ({row['requested_by']}): another supervisor "
                f"must decide it (four eyes, {RULE})"
            )
        now = self.clock.now()
        expires: str | None = None
        if approve:
            recordings = self._live(list(row["recordings"]))
            secret = [r.id for r in recordings if r.confidential]
            if secret and not caller.holds(CONFIDENTIAL):
                raise NotPermitted(
                    f"request {request_id} takes in confidential recordings "
                    f"{', '.join(map(str, secret))}: approving it needs the confidential grant "
                    f"as well as supervisor (001 Art. 29)"
                )
            if row["for_party"] is not None:
                self._refuse_confidential_for_party(recordings)
            end = until or (parse_utc(row["until"]) if row["until"] else None)
            # Whole seconds: the end is read by people (and typed back as --until).
            end = end or (now + timedelta(days=self.config.access.approval_days))
            end = end.replace(microsecond=0)
            if end <= now:
                raise UsageError(f"until: {isoformat_utc(end)} has passed", field="until")
            expires = isoformat_utc(end)
        kind = "access.approved" if approve else "access.refused"
        with self.catalog.transaction():
            # Two supervisors at once: the second finds it decided (the catalog's
            # mutex and the write lock hold from here to the commit).
            state = self._request_row(request_id)["state"]
            if state != "pending":
                raise UsageError(f"request {request_id} is {state} already: it is decided once")
            data = {
                "request": request_id,
                "recordings": list(row["recordings"]),
                "by": caller.actor,
                "uid": caller.identity.uid,
                ("note" if approve else "reason"): note,
            }
            if approve:
                data["until"] = expires
            entry = self._log(kind, data, now)
            self.catalog.record_decision(
                request_id,
                {
                    "state": "approved" if approve else "refused",
                    "decided_by": caller.actor,
                    "decided_uid": caller.identity.uid,
                    "decided_at": entry.time,
                    "decision_note": note,
                    "expires_at": expires,
                    "decision_log_seq": entry.seq,
                },
            )
        log.info(kind, request=request_id, by=caller.actor, expires_at=expires)
        return self.access_request(request_id)

    def access_request(self, request_id: int) -> AccessRequest:
        uses = len(self.catalog.access_uses(request_id))
        return self._as_request(self._request_row(request_id), self.clock.now(), uses)

    def access_requests(
        self, *, uid: int | None = None, pending: bool = False
    ) -> list[AccessRequest]:
        """Every request in id order; only `uid`'s, only those still pending, if asked."""
        now = self.clock.now()
        uses = self.catalog.access_use_counts()  # one query, not one per request
        found = [
            self._as_request(row, now, uses.get(int(row["id"]), 0))
            for row in self.catalog.access_requests()
            if uid is None or int(row["requested_uid"]) == uid
        ]
        return [r for r in found if not pending or r.state == "pending"]

    # -- using a grant ------------------------------------------------------------------

    def view(self, request_id: int, *, caller: Caller, ids: Sequence[int] = ()) -> Viewed:
        """Open an approved view: read-only copies of its recordings (or `ids` of them)
        in `<runtime>/view/<uid>/<request>/`, the requester's only, until the grant ends."""
        row, until = self._grant(request_id, "view", caller)
        chosen = self._chosen(row, ids)
        folder = self._view_root() / str(caller.identity.uid) / str(request_id)
        folder.mkdir(parents=True, exist_ok=True)
        uid, gid = caller.identity.uid, caller.identity.gid
        # The folders stay the daemon's, enter-only (0711): under systemd dockd is root
        # without CAP_DAC_OVERRIDE, and must still remove what it put there. Each file
        # is the requester's alone (0400); they get its path, nobody can list the folder.
        for level in (self._view_root(), folder.parent, folder):
            os.chmod(level, 0o711)
        files = []
        for recording in chosen:
            name = f"{recording.id}-{Path(recording.source_path_text).name}"
            dest = folder / name
            if not dest.exists():
                part = folder / f".{name}.part"
                shutil.copyfile(self.store.object_path(recording.sha256), part)
                digest, _size = hash_file(part, self.config.ingest.buffer_size)
                if digest != recording.sha256:
                    part.unlink()
                    raise IntegrityError(
                        f"recording {recording.id}: the store copy reads as {digest}, not "
                        f"{recording.sha256}: run dockd audit; nothing was shown"
                    )
                _own(part, uid, gid, 0o400)
                os.replace(part, dest)
            files.append(str(dest))
        with self.catalog.transaction():
            data = {
                "request": request_id,
                "recordings": [r.id for r in chosen],
                "by": caller.actor,
                "until": until,
                "folder": str(folder),
            }
            entry = self._log("access.viewed", data)
            self._use(row, "viewed", chosen, caller, {"folder": str(folder)}, entry.seq, entry.time)
        log.info("access.viewed", request=request_id, by=caller.actor, files=len(files))
        return Viewed(request_id, str(folder), tuple(files), until, entry.seq)

    def close_ended_views(self) -> list[str]:
        """Remove the view folders whose grant has ended (or whose request is gone)."""
        root = self._view_root()
        if not root.is_dir():
            return []
        now = self.clock.now()
        removed = []
        for folder in sorted(root.glob("*/*")):
            row = self.catalog.access_request(int(folder.name)) if folder.name.isdigit() else None
            ended = (
                row is None
                or row["state"] != "approved"
                or not row["expires_at"]
                or parse_utc(row["expires_at"]) <= now
            )
            if ended:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(str(folder))
        if removed:
            log.info("access.views_closed", folders=len(removed))
        return removed

    def copy(self, request_id: int, out: Path, *, caller: Caller) -> Copied:
        """Write the self-verifying copy package of an approved copy request to `out`."""
        row, _until = self._grant(request_id, "copy", caller)
        if not out.is_absolute():
            raise UsageError(f"out: expected an absolute path, not {str(out)!r}", field="out")
        chosen = self._chosen(row, ())
        if row["for_party"] is not None:
            self._refuse_confidential_for_party(chosen)
        written = self.write_copy_package(
            [r.id for r in chosen],
            out,
            purpose=row["reason"],
            for_party=row["for_party"],
            request_id=request_id,
            actor=caller.actor,
        )
        self.hand_over(out, caller)
        with self.catalog.transaction():
            data = {
                "request": request_id,
                "recordings": [r.id for r in chosen],
                "package_sha256": written.package_sha256,
                "out": written.out,
                "for_party": row["for_party"],
                "by": caller.actor,
            }
            entry = self._log("access.copied", data)
            detail = {"package_sha256": written.package_sha256, "out": written.out}
            self._use(row, "copied", chosen, caller, detail, entry.seq, entry.time)
        log.info(
            "access.copied", request=request_id, by=caller.actor, sha256=written.package_sha256
        )
        return Copied(request_id, written, row["for_party"], entry.seq)

    def approved_export(self, request_id: int, ids: Sequence[int], caller: Caller) -> AccessRequest:
        """The approved export request that covers recordings `ids` (export build)."""
        row, _until = self._grant(request_id, "export", caller)
        outside = sorted(set(ids) - set(row["recordings"]))
        if outside:
            raise NotPermitted(
                f"request {request_id} does not cover recordings "
                f"{', '.join(map(str, outside[:10]))}: ask for an export of these"
            )
        return self._as_request(row, self.clock.now(), len(self.catalog.access_uses(request_id)))

    def outbox(self, caller: Caller, name: str) -> Path:
        """A new folder `<runtime>/out/<uid>/<name>-<time>` for files made for `caller`:
        the daemon writes there (it cannot reach their folders) and hands it over
        (`hand_over`: the folder and all in it become theirs); their CLI moves it
        where they asked and empties it. `out/` and `<uid>/` stay the daemon's,
        enter-only (0711), so that it can take away the emptied folders (here, each
        time) while nobody lists another's; systemd wipes the rest at stop."""
        mine = self.config.daemon.runtime_dir / "out" / str(caller.identity.uid)
        mine.mkdir(parents=True, exist_ok=True)
        for level in (mine.parent, mine):
            os.chmod(level, 0o711)
        for old in mine.iterdir():
            with contextlib.suppress(OSError):  # only the emptied ones go
                old.rmdir()
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%S%fZ")
        return mine / f"{name}-{stamp}"

    def hand_over(self, out: Path, caller: Caller) -> None:
        """Give what was written under `out` to `caller` (root's stays root's)."""
        if caller.identity.root:
            return
        uid, gid = caller.identity.uid, caller.identity.gid
        _own(out, uid, gid, None)
        for folder, dirs, files in os.walk(out):
            for name in (*dirs, *files):
                _own(Path(folder) / name, uid, gid, None)

    # -- marks and refusals -------------------------------------------------------------

    def mark_confidential(
        self, ids: Sequence[int], level: str | None, *, reason: str, caller: Caller
    ) -> Marked:
        """Mark recordings confidential (state_secret, commercial_secret, privacy), or
        remove the mark (level None): never in a party's copy, approvals need the grant."""
        if level is not None and level not in LEVELS:
            raise UsageError(f"confidential: {level!r} is not one of {', '.join(LEVELS)}")
        reason = _clean(reason, "reason")
        recordings = self._live(list(ids))
        with self.catalog.transaction():
            data = {
                "recordings": [r.id for r in recordings],
                "level": level,
                "reason": reason,
                "by": caller.actor,
            }
            entry = self._log("recording.confidential", data)
            self.catalog.mark_confidential([r.id for r in recordings], level)
        return Marked(tuple(r.id for r in recordings), level, entry.seq)

    def log_denied(
        self,
        op: str,
        caller: Caller,
        needs: Iterable[str],
        detail: str,
        recordings: Sequence[int] = (),
    ) -> int:
        """Record that the permission table refused `op` to `caller` (nothing else changes):
        who, what they asked for (and about which recordings), and the roles it needs."""
        data = {
            "op": op,
            "recordings": sorted(set(recordings)),
            "by": caller.actor,
            "uid": caller.identity.uid,
            "groups": list(caller.identity.groups),
            "roles": sorted(caller.roles - {CONFIDENTIAL}),
            "needs": sorted(needs),
            "detail": detail,
        }
        with self.catalog.transaction():
            entry = self._log("access.denied", data)
        log.warning("access.denied", op=op, by=caller.actor, needs=",".join(sorted(needs)))
        return entry.seq

    # -- helpers ------------------------------------------------------------------------

    def _view_root(self) -> Path:
        return self.config.daemon.runtime_dir / "view"

    def _request_row(self, request_id: int) -> dict[str, Any]:
        row = self.catalog.access_request(request_id)
        if row is None:
            raise UsageError(f"no request {request_id} (dockd request list)")
        return row

    @staticmethod
    def _asked_by(row: dict[str, Any], caller: Caller) -> bool:
        """Whether `caller` is who asked for the request: the same uid, and for root the
        same person behind it (the actor names root's login)."""
        if int(row["requested_uid"]) != caller.identity.uid:
            return False
        return not caller.identity.root or row["requested_by"] == caller.actor

    def _grant(self, request_id: int, kind: str, caller: Caller) -> tuple[dict[str, Any], str]:
        """The approved, unexpired request `request_id` of `kind` (a view or copy: the
        caller's own)."""
        row = self._request_row(request_id)
        if row["kind"] != kind:
            raise UsageError(f"request {request_id} is for {row['kind']}, not {kind}")
        # A view or a copy is the requester's own; an export is made centrally (004
        # Art. 17): any archivist carries out an approved export request.
        if kind != "export" and not self._asked_by(row, caller):
            raise NotPermitted(
                f"request {request_id} is {row['requested_by']}'s: a grant is for the one "
                "who asked for it"
            )
        if row["state"] != "approved":
            raise NotPermitted(f"request {request_id} is {row['state']}, not approved ({RULE})")
        expires = str(row["expires_at"])
        if parse_utc(expires) <= self.clock.now():
            raise NotPermitted(
                f"the approval of request {request_id} ended at {expires}: ask again"
            )
        return row, expires

    def _chosen(self, row: dict[str, Any], ids: Sequence[int]) -> list[Recording]:
        granted = list(row["recordings"])
        if ids:
            outside = sorted(set(ids) - set(granted))
            if outside:
                raise NotPermitted(
                    f"request {row['id']} does not cover recordings {', '.join(map(str, outside))}"
                )
            granted = [i for i in granted if i in set(ids)]
        return self._live(granted)

    def _live(self, ids: list[int]) -> list[Recording]:
        if not ids:
            raise UsageError("no recordings named")
        recordings = self._existing(ids)
        gone = [r.id for r in recordings if r.deleted]
        if gone:
            raise UsageError(f"recordings {', '.join(map(str, gone))} are deleted (tombstones)")
        return recordings

    @staticmethod
    def _refuse_confidential_for_party(recordings: Sequence[Recording]) -> None:
        secret = [r for r in recordings if r.confidential]
        if secret:
            listed = ", ".join(f"{r.id} ({r.confidential})" for r in secret)
            raise NotPermitted(
                f"recordings {listed} are confidential: a party's copy may not hold them "
                "(001 Art. 28, 004 Art. 19)"
            )

    def _use(
        self,
        row: dict[str, Any],
        kind: str,
        recordings: Sequence[Recording],
        caller: Caller,
        detail: dict[str, Any],
        seq: int,
        at: str,
    ) -> None:
        self.catalog.insert_access_use(
            {
                "id": self.catalog.next_id("access_uses"),
                "request_id": int(row["id"]),
                "kind": kind,
                "recordings": [r.id for r in recordings],
                "by": caller.actor,
                "at": at,
                "detail": detail,
                "log_seq": seq,
            }
        )

    def _as_request(self, row: dict[str, Any], now: datetime, uses: int) -> AccessRequest:
        state = str(row["state"])
        if state == "approved" and row["expires_at"] and parse_utc(row["expires_at"]) <= now:
            state = "expired"
        return AccessRequest(
            request=int(row["id"]),
            kind=str(row["kind"]),
            recordings=tuple(row["recordings"]),
            case=row["case_no"],
            reason=str(row["reason"]),
            for_party=row["for_party"],
            until=row["until"],
            requested_by=str(row["requested_by"]),
            requested_at=str(row["requested_at"]),
            state=state,
            decided_by=row["decided_by"],
            decided_at=row["decided_at"],
            note=row["decision_note"],
            expires_at=row["expires_at"],
            log_entry=int(row["log_seq"]),
            decision_entry=row["decision_log_seq"],
            uses=uses,
        )


def _own(path: Path, uid: int, gid: int, mode: int | None) -> None:
    """Give `path` to the caller (the daemon runs as root); `mode` if given."""
    # The mode first: once the file is theirs, root without CAP_FOWNER (the unit) may
    # no longer change it.
    if mode is not None:
        os.chmod(path, mode)
    with contextlib.suppress(PermissionError):  # not root (tests as a user): keep ours
        os.chown(path, uid, gid, follow_symlinks=False)
