"""The request table's access entries (R6): requests, decisions, views, copies,
confidential marks, custody reports, scoped log exports, proofs.

Each runs with the Host's caller (the socket's peer, or root without the
daemon): the permission table has already let the caller ask
(access/roles.py); the service checks the rest (four eyes, the requester's
own grant, confidentiality, expiry). Files made for a caller (a copy
package, a log export) go where the Host says (`outbox`): the daemon writes
them into its outbox, `<runtime>/out/<uid>/`, hands them to the caller, and
the caller's CLI moves them to the folder they named (cli/access.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from dockd.access.roles import Caller
from dockd.errors import NotPermitted, UsageError
from dockd.runner.arguments import (
    Signature,
    ids_of,
    int_of,
    moment_of,
    required_of,
    signature,
    text_of,
)
from dockd.service import Service


class _Host(Protocol):
    service: Service
    caller: Caller

    def outbox(self, out: Path, name: str) -> Path: ...


def _recordings(a: dict[str, Any]) -> list[int]:
    return ids_of(a) if a.get("ids") else []


def _out(a: dict[str, Any]) -> Path:
    out = Path(required_of(a, "out"))
    if not out.is_absolute():
        raise UsageError(f"out: expected an absolute path, not {str(out)!r}", field="out")
    return out


def _request_create(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
    return host.service.request_access(
        required_of(a, "kind"),
        ids=_recordings(a),
        case=text_of(a, "case"),
        reason=required_of(a, "reason"),
        for_party=text_of(a, "for_party"),
        until=moment_of(a, "until"),
        caller=host.caller,
    )


def _request_list(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
    # Those who decide or audit see every request; anyone else sees their own.
    overseer = any(host.caller.holds(r) for r in ("supervisor", "auditor", "admin"))
    mine = bool(a.get("mine")) or not overseer
    return host.service.access_requests(
        uid=host.caller.identity.uid if mine else None, pending=bool(a.get("pending"))
    )


def _decide(approve: bool) -> Callable[[_Host, dict[str, Any], str | None], Any]:
    def run(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
        return host.service.decide_request(
            int_of(a, "request") or 0,
            approve=approve,
            note=required_of(a, "note" if approve else "reason"),
            until=moment_of(a, "until") if approve else None,
            caller=host.caller,
        )

    return run


def _view(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
    return host.service.view(int_of(a, "request") or 0, caller=host.caller, ids=_recordings(a))


def _copy(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
    request = int_of(a, "request") or 0
    out = host.outbox(_out(a), f"copy-{request}")
    return host.service.copy(request, out, caller=host.caller)


def _confidential(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
    return host.service.mark_confidential(
        ids_of(a), text_of(a, "level"), reason=required_of(a, "reason"), caller=host.caller
    )


def _custody(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
    return host.service.custody(_recordings(a), text_of(a, "case"))


def _log_export(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
    """The log (or only the entries about a case or recordings) to a folder of the caller's."""
    out, caller, service = _out(a), host.caller, host.service
    case, ids = text_of(a, "case"), _recordings(a)
    scoped = case is not None or bool(ids)
    # The whole log names every case's parties: only an auditor or admin takes it away.
    if not scoped and not (caller.holds("auditor") or caller.holds("admin")):
        raise NotPermitted(
            f"log.export: the whole log is for auditor or admin ({caller.actor}); "
            "export the entries of a case or of recordings instead (--case, --ids)"
        )
    out = host.outbox(out, "log-export")
    if service.log_grew():
        service.checkpoint()
    if scoped:
        result: Any = service.export_log_scoped(out, case=case, recordings=ids)
    else:
        first = int_of(a, "first", required=False) or 1
        result = service.export_log(out, first, int_of(a, "last", required=False))
    service.hand_over(out, caller)
    return result


def _proof(host: _Host, a: dict[str, Any], actor: str | None) -> Any:
    return host.service.inclusion(int_of(a, "recording") or 0)


AccessRun = Callable[[_Host, dict[str, Any], str | None], Any]

# Entries of the request table (merged into runner/operations.py OPERATIONS).
ACCESS_RUNS: dict[str, tuple[AccessRun, Signature]] = {
    "request.create": (
        _request_create,
        signature(
            "Ask to view or copy recordings (or a case's), for a reason",
            "kind! ids:ids case reason! for_party until:time",
        ),
    ),
    "request.list": (
        _request_list,
        signature(
            "Access requests: one's own, or all for those who decide", "mine:bool pending:bool"
        ),
    ),
    "request.approve": (
        _decide(True),
        signature(
            "Approve a request (a supervisor; never their own)", "request!:int note! until:time"
        ),
    ),
    "request.refuse": (_decide(False), signature("Refuse a request", "request!:int reason!")),
    "access.view": (
        _view,
        signature("Open approved recordings for viewing (logged)", "request!:int ids:ids"),
    ),
    "access.copy": (
        _copy,
        signature("Write the copy package of an approved request", "request!:int out!:path"),
    ),
    "recording.confidential": (
        _confidential,
        signature("Mark recordings confidential, or take the mark off", "ids!:ids level reason!"),
    ),
    "custody": (
        _custody,
        signature("The chain of custody of recordings or a case, with proofs", "ids:ids case"),
    ),
    "log.export": (
        _log_export,
        signature(
            "The log (or a case's or recordings' entries) with proofs, to a folder",
            "out!:path first:int last:int case ids:ids",
        ),
    ),
    "proof.inclusion": (
        _proof,
        signature("The inclusion proof of a recording's log entry", "recording!:int"),
    ),
}
# Those that only read (a local run needs no lock).
ACCESS_READS = frozenset({"request.list", "proof.inclusion"})
# Those that copy recordings (gigabytes): a worker thread and the long timeout.
ACCESS_LONG = frozenset({"access.view", "access.copy", "log.export"})
