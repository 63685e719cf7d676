"""`dockd request …`, `approve`, `refuse`, `view`, `copy`, `custody`: access under R6.

Viewing and copying need a supervisor's approval (002 Art. 20, 004 Art. 18):
ask (`dockd request view|copy|export`), another person with the supervisor
role approves or refuses (`dockd approve REQ` / `dockd refuse REQ`), then
the requester uses the grant while it lasts (`dockd view REQ`, `dockd copy
REQ --out DIR`, `dockd export build --request REQ`). Every step is a log
entry; `dockd custody` shows them with the proofs that they are logged.

Each command is one entry of the request table, asked of the daemon (which
knows the caller from the socket) or, for root with no daemon, run here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from dockd.access import custody_render
from dockd.access.custody import CustodyReport
from dockd.cli.common import empty_destination, out, receive, run_change, utc_text
from dockd.errors import UsageError

_KINDS = ("view", "copy", "export")


def _ids_or_case(ids: tuple[int, ...], case: str | None) -> dict[str, Any]:
    if bool(ids) == (case is not None):
        raise UsageError("give recording IDS or --case NO (one of the two)")
    return {"ids": list(ids), "case": case}


def _print_requests(rows: list[dict[str, Any]]) -> None:
    table = Table()
    for column in ("request", "kind", "recordings", "state", "asked by", "decided by", "until"):
        table.add_column(column, overflow="fold")
    for r in rows:
        ids = r["recordings"]
        shown = ", ".join(map(str, ids[:8])) + (f" … ({len(ids)})" if len(ids) > 8 else "")
        table.add_row(
            str(r["request"]),
            r["kind"] + (f" for {r['for_party']}" if r["for_party"] else ""),
            (f"case {r['case']}: " if r["case"] else "") + shown,
            r["state"],
            r["requested_by"],
            r["decided_by"] or "-",
            r["expires_at"] or r["until"] or "-",
        )
    out.print(table)


def _print_request(r: dict[str, Any], as_json: bool, summary: str) -> None:
    if as_json:
        click.echo(json.dumps(r, ensure_ascii=False, sort_keys=True))
        return
    entry = r["decision_entry"] or r["log_entry"]
    out.print(f"{summary} (log entry {entry})", markup=False)


@click.group("request", invoke_without_command=False)
def request_group() -> None:
    """Ask to view, copy or export recordings; list requests."""


def _ask(kind: str) -> click.Command:
    @click.argument("ids", nargs=-1, type=int)
    @click.option("--case", default=None, help="All recordings of this case.")
    @click.option("--reason", required=True, help="Why (kept in the log; 调阅事由).")
    @click.option(
        "--for-party",
        default=None,
        help="A copy for a party (当事人): never of confidential recordings.",
    )
    @click.option("--until", default=None, help="Until when (UTC unless an offset is given).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    @click.pass_context
    def ask(
        ctx: click.Context,
        ids: tuple[int, ...],
        case: str | None,
        reason: str,
        for_party: str | None,
        until: str | None,
        as_json: bool,
    ) -> None:
        args = {
            "kind": kind,
            **_ids_or_case(ids, case),
            "reason": reason,
            "for_party": for_party,
            "until": utc_text(until, "--until"),
        }
        result = run_change(ctx, "request.create", args)
        _print_request(
            result,
            as_json,
            f"request {result['request']}: {kind} of {len(result['recordings'])} recording(s), "
            "pending a supervisor's approval",
        )

    ask.__doc__ = f"Ask to {kind} recordings IDS (or --case NO); a supervisor decides."
    return click.command(kind)(ask)


for _kind in _KINDS:
    request_group.add_command(_ask(_kind))


@request_group.command("list")
@click.option("--mine", is_flag=True, help="Only my requests.")
@click.option("--pending", is_flag=True, help="Only those waiting for a decision.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def request_list(ctx: click.Context, mine: bool, pending: bool, as_json: bool) -> None:
    """Requests and their state (pending, approved, refused, expired)."""
    rows = run_change(ctx, "request.list", {"mine": mine, "pending": pending})
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, sort_keys=True))
        return
    _print_requests(rows)


@click.command()
@click.argument("request_id", metavar="REQ", type=int)
@click.option("--note", required=True, help="The approval's note (kept in the log).")
@click.option(
    "--until", default=None, help="The grant's end (default: 7 days, access.approval_days)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def approve(
    ctx: click.Context, request_id: int, note: str, until: str | None, as_json: bool
) -> None:
    """Approve request REQ (supervisor; never your own request)."""
    args = {"request": request_id, "note": note, "until": utc_text(until, "--until")}
    result = run_change(ctx, "request.approve", args)
    _print_request(result, as_json, f"request {request_id} approved until {result['expires_at']}")


@click.command()
@click.argument("request_id", metavar="REQ", type=int)
@click.option("--reason", required=True, help="Why (kept in the log).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def refuse(ctx: click.Context, request_id: int, reason: str, as_json: bool) -> None:
    """Refuse request REQ (supervisor; never your own request)."""
    result = run_change(ctx, "request.refuse", {"request": request_id, "reason": reason})
    _print_request(result, as_json, f"request {request_id} refused")


@click.command()
@click.argument("request_id", metavar="REQ", type=int)
@click.argument("ids", nargs=-1, type=int)
@click.option(
    "--player",
    default="ffplay",
    show_default=True,
    help="Play each file with this program, if it is installed ('' or --no-play: do not).",
)
@click.option("--no-play", is_flag=True, help="Only open the grant and print the files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def view(
    ctx: click.Context,
    request_id: int,
    ids: tuple[int, ...],
    player: str,
    no_play: bool,
    as_json: bool,
) -> None:
    """View the recordings of approved request REQ (or IDS of them): yours only.

    dockd puts read-only copies in a folder that only you can read, and
    removes them when the grant ends; each opening is logged (access.viewed).
    """
    result = run_change(ctx, "access.view", {"request": request_id, "ids": list(ids)})
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, sort_keys=True))
    else:
        out.print(
            f"{len(result['files'])} file(s) in {result['folder']} until {result['until']} "
            f"(log entry {result['log_entry']})",
            markup=False,
        )
        for name in result["files"]:
            out.print(f"  {name}", markup=False)
    program = None if no_play or not player else shutil.which(player)
    if program is None or as_json:
        return
    for name in result["files"]:
        subprocess.run([program, "-autoexit", name] if player == "ffplay" else [program, name],
                       check=False)  # fmt: skip


@click.command()
@click.argument("request_id", metavar="REQ", type=int)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="An empty or new folder of yours.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def copy(ctx: click.Context, request_id: int, out_dir: Path, as_json: bool) -> None:
    """Write the copy of approved request REQ to OUT: a folder that checks itself.

    The files, their manifest, the log entries about them with inclusion
    proofs, the checkpoint and keys, verify.py and a README (zh/en): the
    disc's format. The dock keeps its record (004 Art. 17).
    """
    out_dir = empty_destination(out_dir)
    args = {"request": request_id, "out": str(out_dir)}
    result = run_change(ctx, "access.copy", args)
    package = result["package"]
    package["out"] = str(receive(package["out"], out_dir))
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, sort_keys=True))
        return
    out.print(
        f"copy of request {request_id}: {package['files']} file(s), {package['bytes']:,} bytes "
        f"in {package['out']}; package SHA-256 {package['package_sha256']} "
        f"(log entry {result['log_entry']}). The recipient checks it with "
        "`python3 verify.py` there.",
        markup=False,
    )


@click.command()
@click.argument("ids", nargs=-1, type=int)
@click.option("--case", default=None, help="The case's recordings and its own entries.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(custody_render.FORMATS),
    default="text",
    show_default=True,
)
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True)
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to this file (pdf: required unless stdout is not a terminal).",
)
@click.pass_context
def custody(
    ctx: click.Context,
    ids: tuple[int, ...],
    case: str | None,
    fmt: str,
    lang: str,
    out_file: Path | None,
) -> None:
    """The chain of custody of recordings IDS (or --case NO): every logged event.

    Ingest, labels, links, assignments, requests, approvals, views, copies,
    exports, discs, holds, retention, audits, deletion: each with its log
    number, who, when, and its proof of inclusion in the signed log.
    """
    data = run_change(ctx, "custody", _ids_or_case(ids, case))
    report = CustodyReport.from_json(data)
    if fmt == "pdf" and out_file is None and sys.stdout.isatty():
        raise UsageError("a PDF goes to a file: give --out FILE.pdf")
    rendered = custody_render.render(report, fmt, lang)
    if out_file is not None:
        out_file.write_bytes(rendered)
        click.echo(
            f"custody report of {report.subject} ({len(report.events)} events) in {out_file}"
        )
        return
    sys.stdout.buffer.write(rendered)
    sys.stdout.flush()
