"""`dockd retention`, `dockd sweep`, `dockd restore`: footage kept as long as the rules say."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click
from rich.table import Table

from dockd.cli.common import change, echo_change, local_actor, out, run_change, service_for
from dockd.cli.common import utc_text as _utc
from dockd.clock import parse_utc
from dockd.retention.plan import Plan
from dockd.runner.operations import perform


def _as_of(value: str | None) -> datetime | None:
    text = _utc(value, "--as-of")
    return parse_utc(text) if text else None


def _print_plan(plan: Plan) -> None:
    out.print(
        f"retention plan as of {plan.as_of:%Y-%m-%d %H:%M:%S} UTC, policy {plan.policy_version}, "
        f"{plan.grace_days} days' grace",
        markup=False,
    )
    table = Table()
    for column in ("id", "action", "tier", "expired", "pending since", "why / when"):
        table.add_column(column, overflow="fold")
    for d in plan.delete:
        c = d.candidate
        action = "delete" if d.remove_object else "delete (bytes shared: kept)"
        table.add_row(
            str(c.id), action, c.tier, f"{c.expires_at:%Y-%m-%d}",
            f"{c.pending_since:%Y-%m-%d}" if c.pending_since else "-", d.reason,
        )  # fmt: skip
    for c in plan.mark_pending:
        table.add_row(
            str(c.id), "mark pending", c.tier, f"{c.expires_at:%Y-%m-%d}", "-",
            f"deleted after {plan.delete_after(plan.as_of):%Y-%m-%d} unless restored",
        )  # fmt: skip
    for c, when in plan.waiting:
        table.add_row(
            str(c.id), "waiting", c.tier, f"{c.expires_at:%Y-%m-%d}",
            f"{c.pending_since:%Y-%m-%d}" if c.pending_since else "-",
            f"in grace until {when:%Y-%m-%d %H:%M}",
        )  # fmt: skip
    for c in plan.protected:
        table.add_row(
            str(c.id), "kept", c.tier, f"{c.expires_at:%Y-%m-%d}", "-",
            "protected by " + ", ".join(c.protected_by),
        )  # fmt: skip
    out.print(table)
    out.print(
        f"delete {len(plan.delete)}, mark pending {len(plan.mark_pending)}, "
        f"waiting {len(plan.waiting)}, protected {len(plan.protected)}"
    )


@click.group()
def retention() -> None:
    """What the retention policy will delete, and when."""


@retention.command("plan")
@click.option("--as-of", default=None, help="Plan for this time (default now; may be future).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def retention_plan(ctx: click.Context, as_of: str | None, as_json: bool) -> None:
    """What a sweep would do, and why; changes nothing."""
    with service_for(ctx.find_root(), write=False) as service:
        plan = service.retention_plan(_as_of(as_of))
    if as_json:
        click.echo(json.dumps(plan.as_json(), sort_keys=True))
    else:
        _print_plan(plan)


@retention.command("upcoming")
@click.option("--days", type=float, default=30.0, show_default=True, help="Look this far ahead.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def retention_upcoming(ctx: click.Context, days: float, as_json: bool) -> None:
    """Recordings that expire within DAYS: tag or hold what must be kept, in time."""
    with service_for(ctx.find_root(), write=False) as service:
        rows = [r.as_json() for r in service.upcoming(days)]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, sort_keys=True))
        return
    table = Table(title=f"{len(rows)} recording(s) expire within {days:g} days")
    for column in (
        "id", "expires (UTC)", "tier", "state", "serial", "no.", "officer", "unit", "cause",
    ):  # fmt: skip
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]), r["expires_at"], r["tier"], r["retention_state"],
            r["device_serial"], r["device_number"] or "-", r["officer"] or "-", r["unit"] or "-",
            r["cause"] or "-",
        )  # fmt: skip
    out.print(table)


EXIT = """\b
Exit codes:
  0  done (or, with --dry-run, planned)
  2  usage error (e.g. --as-of in the future without --dry-run)
  4  another process holds the state directory
"""


@click.command(epilog=EXIT)
@click.option("--as-of", default=None, help="Sweep as of this time (default now; not future).")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def sweep(ctx: click.Context, as_of: str | None, dry_run: bool, as_json: bool) -> None:
    """Apply the retention policy: expired footage goes pending, then is deleted after grace.

    Every deletion leaves a tombstone (the row, its hash and labels) and a
    log entry with the reason and the policy version.
    """
    if dry_run:
        with service_for(ctx, write=False) as service:
            report = service.sweep(_as_of(as_of), dry_run=True)
        if as_json:
            click.echo(json.dumps(report.as_json(), sort_keys=True))
        else:
            _print_plan(report.plan)
        return
    args: dict[str, Any] = {"as_of": _utc(as_of, "--as-of"), "dry_run": False}
    result = change(
        ctx,
        "retention.sweep",
        args,
        lambda service: perform(service, "retention.sweep", args, local_actor()),
        timeout=3600.0,
    )
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        sys.exit(0)
    out.print(
        f"sweep as of {result['as_of']} (policy {result['policy_version']}): "
        f"{len(result['deleted'])} deleted ({result['objects_removed']} store objects removed), "
        f"{len(result['marked_pending'])} marked pending deletion, "
        f"{result['waiting']} in their grace period, {result['protected']} protected",
        markup=False,
    )


@click.command()
@click.argument("recording_id", type=int)
@click.option("--reason", required=True, help="Why it must be kept.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def restore(ctx: click.Context, recording_id: int, reason: str, as_json: bool) -> None:
    """Take RECORDING_ID back from pending deletion (kept retention.restore_days more)."""
    result = run_change(ctx, "retention.restore", {"recording": recording_id, "reason": reason})
    echo_change(
        result, as_json, f"recording {recording_id} restored, kept until {result['keep_until']}"
    )
