"""Everything a person may ask of dockd, by name, with JSON arguments: one table.

The table (OPERATIONS) serves both ways a request reaches the Service: the
running daemon's socket (api.py, the caller's uid as actor; Daemon.handle is
one lookup here) and the CLI when no daemon runs (the local user as actor).
Arguments are checked here, so a malformed request gets the same clear error
either way. Each entry runs against a Host: the daemon (daemon.py) or the
CLI's own Service (LocalHost). Entries marked `daemon_only` (status, reload)
need a running daemon; their local fallback says that dockd is not running.
Entries marked `long` (export build, resume, burn) run in a worker thread of
the daemon, and report their progress to `dockd status` (an "exports" entry).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dockd.access.roles import Caller, Identity, roles_of
from dockd.archive.iso import burn, sha256_of_drive
from dockd.archive.plan import DiscPlan, pack, parse_medium
from dockd.catalog import RecordingFilter
from dockd.config import AccessConfig
from dockd.errors import NotPermitted, UnknownOperation, UsageError
from dockd.retention.report import GROUP_KEYS, overdue_to_csv, to_csv
from dockd.retention.report_html import to_html
from dockd.retention.report_table import to_text
from dockd.runner.access_operations import ACCESS_LONG, ACCESS_READS, ACCESS_RUNS
from dockd.runner.arguments import (
    Signature,
    ids_of,
    int_of,
    moment_of,
    recording_filter,
    required_of,
    signature,
    text_of,
    texts_of,
)
from dockd.runner.client import DaemonUnavailable
from dockd.service import Service
from dockd.service.results import wire


class Tracker(Protocol):
    """Progress of a long request (an export): discs and bytes."""

    def disc(self, label: str, size: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def done(self, label: str) -> None: ...


class _NoTracker:
    def disc(self, label: str, size: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass

    def done(self, label: str) -> None:
        pass


class Host:
    """Where a request runs. This one is the CLI's own Service (no daemon runs)."""

    def __init__(
        self, service: Service, tracker: Tracker | None = None, caller: Caller | None = None
    ) -> None:
        self.service = service
        self._tracker = tracker
        # Who asks: the socket's peer (the daemon), else this process's user.
        self.caller = caller or local_caller()

    def outbox(self, out: Path, name: str) -> Path:
        """Where files asked for into `out` are written. Here: `out` itself. The daemon
        cannot reach the caller's folders (ProtectHome=, PrivateTmp=): it writes into
        its outbox and the CLI moves them (_DaemonHost)."""
        return out

    def status(self) -> dict[str, Any]:
        raise DaemonUnavailable("dockd is not running: only the daemon can answer this")

    def reload(self) -> dict[str, Any]:
        raise DaemonUnavailable("dockd is not running: there is no daemon to reload")

    def track(self, key: str, discs: int, total: int, actor: str | None) -> Tracker:
        """A tracker for a long request `key` (e.g. "export:3") of `discs` discs, `total` bytes."""
        return self._tracker or _NoTracker()


Run = Callable[[Host, dict[str, Any], str | None], Any]


@dataclass(frozen=True)
class Operation:
    """One entry of the table.

    run: the request itself, against a Host.
    signature: what it does and the arguments it takes (arguments.py).
    daemon_only: only a running daemon can answer (no local Service is opened).
    writes: run locally, it needs the state directory's lock (a writing Service).
    long: the daemon runs it in a worker thread, not its socket thread; the
        CLI waits for it with a long timeout.
    """

    run: Run
    signature: Signature
    daemon_only: bool = False
    writes: bool = True
    long: bool = False


def _spot_check(s: Service, a: dict[str, Any], actor: str | None) -> Any:
    chosen = recording_filter(a.get("filters"))
    ids = None
    if chosen != RecordingFilter():
        ids = [r.id for r in s.catalog.search(chosen) if not r.deleted]
    return s.spot_check(
        int_of(a, "sample") or 0,
        seed=int_of(a, "seed", required=False),
        ids=ids,
        filters=chosen.as_json(),
        actor=actor,
    )


def _assign(s: Service, a: dict[str, Any], actor: str | None) -> Any:
    serial = a.get("serial")
    if not isinstance(serial, str):
        raise UsageError("device.assign needs a serial")
    assignment, changed = s.assign_device(
        serial,
        officer=text_of(a, "officer"),
        unit=text_of(a, "unit"),
        device_number=text_of(a, "device_number"),
        valid_from=moment_of(a, "valid_from"),
        valid_to=moment_of(a, "valid_to"),
        reason=text_of(a, "reason"),
        actor=actor,
    )
    return {"assignment": assignment.as_json(), "reattributed": changed}


ChangeRun = Callable[[Service, dict[str, Any], str | None], Any]

# Changes of the catalog, each made by the one Service: (run, what it takes).
_CHANGES: dict[str, tuple[ChangeRun, Signature]] = {
    "device.assign": (
        _assign,
        signature(
            "Assign a camera to an officer and unit from a moment on (or return it to the pool)",
            "serial! officer unit device_number valid_from:time valid_to:time reason",
        ),
    ),
    "tag": (
        lambda s, a, actor: s.tag(
            ids_of(a),
            cause=text_of(a, "cause"),
            parties=texts_of(a, "parties"),
            categories=texts_of(a, "categories"),
            remove_categories=texts_of(a, "remove_categories"),
            note=text_of(a, "note"),
            reason=text_of(a, "reason"),
            actor=actor,
        ),
        signature(
            "Label recordings: case cause, parties, categories, a note",
            "ids!:ids cause parties:strs categories:strs remove_categories:strs note reason",
        ),
    ),
    "case.create": (
        lambda s, a, actor: s.create_case(
            required_of(a, "case"),
            cause=required_of(a, "cause"),
            parties=texts_of(a, "parties"),
            categories=texts_of(a, "categories"),
            actor=actor,
        ),
        signature("Open a case", "case! cause! parties:strs categories:strs"),
    ),
    "case.link": (
        lambda s, a, actor: s.link_case(
            required_of(a, "case"), ids_of(a), reason=text_of(a, "reason"), actor=actor
        ),
        signature("Link recordings to a case (their tier follows it)", "case! ids!:ids reason"),
    ),
    "case.unlink": (
        lambda s, a, actor: s.unlink_case(
            required_of(a, "case"), ids_of(a), reason=required_of(a, "reason"), actor=actor
        ),
        signature("Unlink recordings from a case", "case! ids!:ids reason!"),
    ),
    "case.close": (
        lambda s, a, actor: s.set_case_state(
            required_of(a, "case"), "closed", reason=required_of(a, "reason"), actor=actor
        ),
        signature("Close a case", "case! reason!"),
    ),
    "case.reopen": (
        lambda s, a, actor: s.set_case_state(
            required_of(a, "case"), "open", reason=required_of(a, "reason"), actor=actor
        ),
        signature("Reopen a closed case", "case! reason!"),
    ),
    "hold.set": (
        lambda s, a, actor: s.set_hold(
            case=text_of(a, "case"),
            ids=ids_of(a) if a.get("ids") else None,
            reason=required_of(a, "reason"),
            actor=actor,
        ),
        signature("Put a legal hold on a case or on recordings", "case ids:ids reason!"),
    ),
    "hold.release": (
        lambda s, a, actor: s.release_hold(
            int_of(a, "hold") or 0, reason=required_of(a, "reason"), actor=actor
        ),
        signature("Release a legal hold", "hold!:int reason!"),
    ),
    "retention.sweep": (
        lambda s, a, actor: s.sweep(
            moment_of(a, "as_of"), dry_run=bool(a.get("dry_run")), actor=actor
        ).summary(),
        signature(
            "Delete what the retention rules let go (R5), as of now", "as_of:time dry_run:bool"
        ),
    ),
    "retention.restore": (
        lambda s, a, actor: s.restore(
            int_of(a, "recording") or 0, reason=required_of(a, "reason"), actor=actor
        ),
        signature("Undo a deletion within its grace period", "recording!:int reason!"),
    ),
    "report.spot_check": (
        _spot_check,
        signature(
            "Draw recordings for a supervisor's spot check (logged)",
            "sample!:int seed:int filters:object",
        ),
    ),
    "gap.explain": (
        lambda s, a, actor: s.explain_gap(
            required_of(a, "gap"), required_of(a, "text"), actor=actor
        ),
        signature("Record a written explanation of an interruption", "gap! text!"),
    ),
}


REPORT_FORMATS = ("json", "html", "csv", "text")


def _compliance(host: Host, a: dict[str, Any], actor: str | None) -> Any:
    """The compliance report (service/reports.py) in one of REPORT_FORMATS: its JSON and
    the charts' figures, the page (retention/report_html.py; the admin page), the CSV's
    two tables, or the text tables for a terminal `width` wide."""
    fmt = text_of(a, "format") or "json"
    if fmt not in REPORT_FORMATS:
        raise UsageError(f"format: {fmt!r} is not one of {', '.join(REPORT_FORMATS)}", "format")
    by = text_of(a, "by") or "unit"
    if by not in GROUP_KEYS:
        raise UsageError(f"by: {by!r} is not one of {', '.join(GROUP_KEYS)}", "by")
    start, end = moment_of(a, "from"), moment_of(a, "to")
    if start and end and end <= start:
        raise UsageError(f"to ({a['to']}) must be after from ({a['from']})", "to")
    report, charts = host.service.compliance(start, end, by)
    if fmt == "html":
        limit = host.service.config.devices.overdue_hours
        return {"html": to_html(report, charts, text_of(a, "lang") or "zh", limit)}
    if fmt == "csv":
        return {
            "csv": to_csv(report).decode("utf-8"),
            "overdue_csv": overdue_to_csv(report).decode("utf-8"),
            "groups": len(report.groups),
            "overdue": len(report.overdue),
        }
    if fmt == "text":
        width = int_of(a, "width", required=False) or 120
        return {"text": to_text(report, max(40, min(width, 400)))}
    return {"report": report.as_json(), "charts": charts.as_json()}


def checkpoint_json(service: Service) -> dict[str, Any]:
    """Sign a checkpoint now; with the keys that verify it (CLI and socket alike)."""
    note = service.checkpoint()
    return {"checkpoint": note, "keys": [k.to_text() for k in service.trusted_keys()]}


def _audit(host: Host, a: dict[str, Any], actor: str | None) -> Any:
    fraction = a.get("fraction")
    if fraction is not None and (
        not isinstance(fraction, int | float) or isinstance(fraction, bool)
    ):
        raise UsageError("fraction: expected a number")
    return host.service.audit(None if fraction is None else float(fraction)).as_json()


# -- archival discs: long requests ---------------------------------------------------


def export_plan(service: Service, selection: dict[str, Any]) -> DiscPlan:
    """The discs of a selection (export plan / build): stable for the same catalog."""
    if not isinstance(selection, dict) or not isinstance(selection.get("media"), str):
        raise UsageError("selection: expected an object with media")
    tier = selection.get("tier")
    items = service.export_items(
        tier=tier if isinstance(tier, str) else None,
        cases=tuple(str(c) for c in selection.get("cases") or ()),
        not_exported=bool(selection.get("not_exported")),
    )
    copies = selection.get("copies", 1)
    if not isinstance(copies, int) or isinstance(copies, bool):
        raise UsageError("selection.copies: expected an integer")
    return pack(items, parse_medium(selection["media"]), copies)


def _out_dir(a: dict[str, Any], key: str = "out") -> Path:
    out = Path(required_of(a, key))
    if not out.is_absolute():
        raise UsageError(f"{key}: expected an absolute path, not {str(out)!r}")
    return out


def build_discs(host: Host, export_id: int, out_dir: Path, actor: str | None) -> dict[str, Any]:
    """Build (or re-check) every disc image of export `export_id` in `out_dir`."""
    service = host.service
    discs = service.discs(export_id)
    if not discs:
        raise UsageError(f"no export {export_id} (dockd export list)")
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {
        d.label: sum(r.size for r in service.catalog.recordings_by_id(d.recordings)) for d in discs
    }
    tracker = host.track(f"export:{export_id}", len(discs), sum(sizes.values()), actor)
    results = []
    for d in discs:
        tracker.disc(d.label, sizes[d.label])
        results.append(service.build_disc(d.label, out_dir, tracker.advance, actor=actor))
        tracker.done(d.label)
    return {"export": export_id, "discs": results}


def _export_build(host: Host, a: dict[str, Any], actor: str | None) -> Any:
    selection = a.get("selection")
    out_dir = _out_dir(a)
    plan = export_plan(host.service, selection)  # type: ignore[arg-type]
    saved = a.get("saved_discs")
    if saved is not None and saved != plan.as_json()["discs"]:
        raise UsageError(
            f"{a.get('plan_file') or 'the saved plan'}: the catalog changed since this plan "
            "was made (recordings added, deleted or exported); run `dockd export plan` again"
        )
    if a.get("approved_by") is not None:
        raise UsageError(
            "approved_by is no longer taken as text: ask with `dockd request export`, have a "
            "supervisor approve it (`dockd approve REQ`), then build with the request",
            field="approved_by",
        )
    # The approved export request that covers every recording of the plan (R6).
    ids = sorted({i for d in plan.discs for i in d.recordings})
    request = host.service.approved_export(int_of(a, "request") or 0, ids, host.caller)
    created = host.service.create_export(
        plan,
        selection,  # type: ignore[arg-type]
        approved_by=request.decided_by or "",
        reason=request.reason,
        request=request.request,
        actor=actor,
    )
    return build_discs(host, created.export, out_dir, actor)


def _export_burn(host: Host, a: dict[str, Any], actor: str | None) -> Any:
    return host.service.burn_disc(
        required_of(a, "label"),
        _out_dir(a, "images"),
        required_of(a, "drive"),
        burn=burn,
        read_back=sha256_of_drive,
        actor=actor,
    )


def _change(fn: ChangeRun, sig: Signature) -> Operation:
    return Operation(lambda host, a, actor: fn(host.service, a, actor), sig)


OPERATIONS: dict[str, Operation] = {
    "status": Operation(
        lambda host, a, actor: host.status(),
        signature("What the daemon is doing: slots, sessions, queues, exports"),
        daemon_only=True,
        writes=False,
    ),
    "reload": Operation(
        lambda host, a, actor: host.reload(),
        signature("Read the configuration file again"),
        daemon_only=True,
        writes=False,
    ),
    "devices": Operation(
        lambda host, a, actor: [d.as_json() for d in host.service.devices()],
        signature("The cameras dockd knows, with their assignments"),
        writes=False,
    ),
    "checkpoint": Operation(
        lambda host, a, actor: checkpoint_json(host.service),
        signature("Sign a checkpoint of the log now; with the keys that verify it"),
    ),
    "audit": Operation(
        _audit, signature("Re-hash stored recordings against the log", "fraction:number"), long=True
    ),
    "key.rotate": Operation(
        lambda host, a, actor: {"vkey": host.service.rotate_key().to_text()},
        signature("Make a new checkpoint signing key"),
    ),
    "report.compliance": Operation(
        _compliance,
        signature(
            "The compliance report (R8), as JSON or as a page with charts",
            "from:time to:time by format lang width:int",
        ),
        writes=False,
    ),
    **{name: _change(fn, sig) for name, (fn, sig) in _CHANGES.items()},
    "export.build": Operation(
        _export_build,
        signature(
            "Plan and build the archival disc images of an approved export request",
            "selection!:object out!:path request!:int saved_discs:any plan_file approved_by",
        ),
        long=True,
    ),
    "export.resume": Operation(
        lambda host, a, actor: build_discs(host, int_of(a, "export") or 0, _out_dir(a), actor),
        signature("Build what an interrupted export left unbuilt", "export!:int out!:path"),
        long=True,
    ),
    "export.burn": Operation(
        _export_burn,
        signature("Burn a disc image, read it back and compare", "label! images!:path drive!"),
        long=True,
    ),
    **{
        name: Operation(run, sig, writes=name not in ACCESS_READS, long=name in ACCESS_LONG)
        for name, (run, sig) in ACCESS_RUNS.items()
    },
}
# Not in the table: the read-only commands that open the catalog themselves (list, show,
# verify, verify-disc, export plan, export list, consistency proofs; `report compliance`
# too, though the table has it for the admin page and other clients of the API). They run
# beside the daemon, without its lock, for root: the state directory is root's (0700),
# so nobody else reads it but through the daemon (the entries above).


def operation(op: str) -> Operation:
    found = OPERATIONS.get(op)
    if found is None:
        raise UnknownOperation(f"unknown request {op!r}")
    return found


def local_caller() -> Caller:
    """This process's user, as the caller of what it runs without the daemon.

    Without the daemon only root works on the state directory (it owns it):
    root holds every role, and its login name (sudo's SUDO_USER, else the
    login) is logged with it and tells two people working as root apart.
    """
    login = os.environ.get("SUDO_USER") or None
    who = Identity.of_uid(os.getuid(), os.getgid(), os.getgroups(), login)
    return Caller(who, roles_of(who, AccessConfig()))


def perform(host: Host | Service, op: str, args: dict[str, Any], actor: str | None) -> Any:
    """Run `op` against `host` (a bare Service: the CLI's own, no daemon).

    Without the daemon, only root may: anyone else must ask the daemon, which
    checks their roles (NotPermitted, exit 5).
    """
    entry = operation(op)
    host = host if isinstance(host, Host) else Host(host)
    only_root_without_the_daemon(op, host.caller)
    entry.signature.check(op, args)
    return wire(entry.run(host, args, actor))


def only_root_without_the_daemon(op: str, caller: Caller) -> None:
    """The one rule for running `op` here, on the state directory itself: root only."""
    if not caller.identity.root:
        raise NotPermitted(
            f"{op}: dockd is not running, and without it only root may work on the state "
            "directory; start it (systemctl start dockd), or use sudo"
        )
