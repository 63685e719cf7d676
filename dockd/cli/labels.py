"""`dockd tag`, `dockd case …`, `dockd hold …`: labels, cases and legal holds (R2, R4).

Every command here is a change: it goes through the running daemon (which
records the caller as the actor) or, when none runs, opens the state
directory itself. Each prints what changed and the log entry recording it.
"""

from __future__ import annotations

import json

import click
from rich.table import Table

from dockd.cli.common import echo_change, out, run_change, service_for
from dockd.errors import UsageError
from dockd.retention.policy import CATEGORIES, CATEGORY_HELP
from dockd.service.access import LEVELS

CATEGORY_CHOICE = click.Choice(sorted(CATEGORIES))
CATEGORY_LIST = "; ".join(f"{c}: {CATEGORY_HELP[c]}" for c in sorted(CATEGORIES))


@click.command(epilog=f"Categories: {CATEGORY_LIST}.")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--cause", default=None, help="Case cause (案由); replaces the current one.")
@click.option("--party", "parties", multiple=True, help="A party (当事人); repeat for several.")
@click.option("--category", "categories", multiple=True, type=CATEGORY_CHOICE, help="Add one.")
@click.option(
    "--remove-category",
    "remove_categories",
    multiple=True,
    type=CATEGORY_CHOICE,
    help="Take a category off (needs --reason: it may shorten retention).",
)
@click.option("--note", default=None, help="A note kept with the recordings.")
@click.option(
    "--confidential",
    type=click.Choice(LEVELS),
    default=None,
    help="Mark confidential (needs --reason; supervisor): never in a party's copy.",
)
@click.option(
    "--not-confidential", is_flag=True, help="Take the confidential mark off (needs --reason)."
)
@click.option("--reason", default=None, help="Why (kept in the log entry).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def tag(
    ctx: click.Context,
    ids: tuple[int, ...],
    cause: str | None,
    parties: tuple[str, ...],
    categories: tuple[str, ...],
    remove_categories: tuple[str, ...],
    note: str | None,
    confidential: str | None,
    not_confidential: bool,
    reason: str | None,
    as_json: bool,
) -> None:
    """Label recordings IDS: cause, parties, categories, a note. The footage never changes.

    --confidential / --not-confidential mark them (001 Art. 29) or take the
    mark off: a request of its own kind (recording.confidential), for a
    supervisor, and nothing else may be given with it.
    """
    if confidential is not None or not_confidential:
        if confidential is not None and not_confidential:
            raise UsageError("give --confidential LEVEL or --not-confidential, not both")
        if cause or parties or categories or remove_categories or note:
            raise UsageError("--confidential is set on its own, not with other labels")
        if not reason:
            raise UsageError("marking confidential needs --reason")
        marks = {"ids": list(ids), "level": confidential, "reason": reason}
        marked = run_change(ctx, "recording.confidential", marks)
        what = f"marked {confidential}" if confidential else "no longer confidential"
        echo_change(marked, as_json, f"{len(marked['recordings'])} recording(s) {what}")
        return
    args = {
        "ids": list(ids),
        "cause": cause,
        "parties": list(parties),
        "categories": list(categories),
        "remove_categories": list(remove_categories),
        "note": note,
        "reason": reason,
    }
    result = run_change(ctx, "tag", args)
    echo_change(result, as_json, f"tagged {len(result['recordings'])} recording(s)")


@click.group()
def case() -> None:
    """Cases: a number, a cause, parties; recordings linked to them."""


@case.command("create", epilog=f"Categories: {CATEGORY_LIST}.")
@click.argument("no")
@click.option("--cause", required=True, help="Case cause (案由).")
@click.option("--party", "parties", multiple=True, help="A party (当事人); repeat for several.")
@click.option(
    "--category",
    "categories",
    multiple=True,
    type=CATEGORY_CHOICE,
    help="A category every linked recording takes on for its retention.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def case_create(
    ctx: click.Context,
    no: str,
    cause: str,
    parties: tuple[str, ...],
    categories: tuple[str, ...],
    as_json: bool,
) -> None:
    """Open case NO."""
    args = {"case": no, "cause": cause, "parties": list(parties), "categories": list(categories)}
    result = run_change(ctx.find_root(), "case.create", args)
    echo_change(result, as_json, f"case {no} opened")


@case.command("link")
@click.argument("no")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--reason", default=None, help="Why (kept in the log entry).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def case_link(
    ctx: click.Context, no: str, ids: tuple[int, ...], reason: str | None, as_json: bool
) -> None:
    """Link recordings IDS to case NO (an open case keeps them from deletion)."""
    result = run_change(
        ctx.find_root(), "case.link", {"case": no, "ids": list(ids), "reason": reason}
    )
    echo_change(result, as_json, f"linked {len(result['linked'])} recording(s) to case {no}")


@case.command("unlink")
@click.argument("no")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.option("--reason", required=True, help="Why (it may shorten retention).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def case_unlink(
    ctx: click.Context, no: str, ids: tuple[int, ...], reason: str, as_json: bool
) -> None:
    """Unlink recordings IDS from case NO."""
    args = {"case": no, "ids": list(ids), "reason": reason}
    result = run_change(ctx.find_root(), "case.unlink", args)
    echo_change(result, as_json, f"unlinked {len(result['unlinked'])} recording(s) from {no}")


@case.command("close")
@click.argument("no")
@click.option("--reason", required=True, help="Why the case is closed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def case_close(ctx: click.Context, no: str, reason: str, as_json: bool) -> None:
    """Close case NO: its recordings keep their tier, no longer protected by the open case."""
    result = run_change(ctx.find_root(), "case.close", {"case": no, "reason": reason})
    echo_change(result, as_json, f"case {no} closed")


@case.command("reopen")
@click.argument("no")
@click.option("--reason", required=True, help="Why the case is reopened.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def case_reopen(ctx: click.Context, no: str, reason: str, as_json: bool) -> None:
    """Reopen case NO."""
    result = run_change(ctx.find_root(), "case.reopen", {"case": no, "reason": reason})
    echo_change(result, as_json, f"case {no} reopened")


@case.command("show")
@click.argument("no")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def case_show(ctx: click.Context, no: str, as_json: bool) -> None:
    """Case NO with its recordings and holds."""
    with service_for(ctx.find_root(), write=False) as service:
        detail = service.case_detail(no)
    if as_json:
        click.echo(json.dumps(detail.as_json(), ensure_ascii=False, sort_keys=True))
        return
    out.print(
        f"case {no} ({detail.state}): {detail.cause}\n"
        f"parties: {', '.join(detail.parties) or '-'}; "
        f"categories: {', '.join(detail.categories) or '-'}; opened {detail.created_at}"
        + (f", closed {detail.closed_at}" if detail.closed_at else ""),
        markup=False,
    )
    for hold in detail.holds:
        state = "active" if hold.active else f"released {hold.released_at}"
        out.print(f"hold {hold.hold} ({state}): {hold.reason}", markup=False)
    table = Table(title=f"{len(detail.recordings)} recording(s)")
    for column in (
        "id",
        "recorded (UTC)",
        "serial",
        "no.",
        "officer",
        "tier",
        "expires",
        "state",
    ):
        table.add_column(column, overflow="fold")
    for r in (rec.as_json() for rec in detail.recordings):
        table.add_row(
            str(r["id"]), r["recorded_start"], r["device_serial"], r["device_number"] or "-",
            r["officer"] or "-", r["tier"] or "-", r["expires_at"] or "never",
            r["retention_state"],
        )  # fmt: skip
    out.print(table)


@case.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def case_list(ctx: click.Context, as_json: bool) -> None:
    """Every case with its state and number of recordings."""
    with service_for(ctx.find_root(), write=False) as service:
        rows = service.cases()
    if as_json:
        click.echo(json.dumps([c.as_json() for c in rows], ensure_ascii=False, sort_keys=True))
        return
    table = Table()
    for column in ("case", "state", "cause", "parties", "categories", "recordings", "opened"):
        table.add_column(column, overflow="fold")
    for c in rows:
        table.add_row(
            c.no, c.state, c.cause, ", ".join(c.parties) or "-",
            ", ".join(c.categories) or "-", str(c.recordings), c.created_at,
        )  # fmt: skip
    out.print(table)


@click.group()
def hold() -> None:
    """Legal holds: held recordings are never deleted, whatever their tier."""


@hold.command("set")
@click.argument("ids", nargs=-1, type=int)
@click.option("--case", "case_no", default=None, help="Hold every recording of this case.")
@click.option("--reason", required=True, help="Why (a court order, a complaint, …).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def hold_set(
    ctx: click.Context, ids: tuple[int, ...], case_no: str | None, reason: str, as_json: bool
) -> None:
    """Hold recordings IDS, or with --case every recording linked to it now or later."""
    if bool(ids) == bool(case_no):
        raise UsageError("give either --case NO or recording ids")
    args = {"case": case_no, "ids": list(ids), "reason": reason}
    result = run_change(ctx.find_root(), "hold.set", args)
    echo_change(
        result, as_json, f"hold {result['hold']} set on {len(result['recordings'])} recording(s)"
    )


@hold.command("release")
@click.argument("hold_id", type=int)
@click.option("--reason", required=True, help="Why the hold ends.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def hold_release(ctx: click.Context, hold_id: int, reason: str, as_json: bool) -> None:
    """Release hold HOLD_ID; its recordings go back to their tier's expiry."""
    result = run_change(ctx.find_root(), "hold.release", {"hold": hold_id, "reason": reason})
    echo_change(result, as_json, f"hold {hold_id} released")


@hold.command("list")
@click.option("--all", "show_all", is_flag=True, help="Released holds too.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def hold_list(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """Active holds (and released ones with --all)."""
    with service_for(ctx.find_root(), write=False) as service:
        rows = [h for h in service.holds() if show_all or h.active]
    if as_json:
        click.echo(json.dumps([h.as_json() for h in rows], ensure_ascii=False, sort_keys=True))
        return
    table = Table()
    for column in ("hold", "on", "recordings", "reason", "set", "by", "released"):
        table.add_column(column, overflow="fold")
    for h in rows:
        released = "-" if h.active else f"{h.released_at} ({h.release_reason})"
        table.add_row(
            str(h.hold), f"case {h.case}" if h.case else "recordings",
            str(len(h.recordings)), h.reason, h.set_at, h.set_by or "-", released,
        )  # fmt: skip
    out.print(table)
