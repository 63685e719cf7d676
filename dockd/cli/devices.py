"""`dockd device …`: the registry of cameras and who carries them (seed rule R2)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from dockd.cli.common import change, local_actor, out, service_for
from dockd.cli.common import utc_text as _utc
from dockd.clock import isoformat_utc
from dockd.devices.registry import timeline
from dockd.errors import UsageError
from dockd.runner.operations import perform


@click.group()
def device() -> None:
    """The device registry: cameras, and which officer and unit carry them when."""


@device.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def device_list(ctx: click.Context, as_json: bool) -> None:
    """Every known camera with its current assignment, last docking and recordings."""
    with service_for(ctx, write=False) as service:
        rows = [d.as_json() for d in service.devices()]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, sort_keys=True))
        return
    table = Table()
    for column in ("serial", "number", "officer", "unit", "since", "last docked", "recordings"):
        table.add_column(column, overflow="fold")
    table.add_column("", style="bold red")
    for d in rows:
        current: dict[str, Any] = d["assigned_to"] or {}
        table.add_row(
            d["serial"],
            current.get("device_number") or "-",
            current.get("officer") or "unassigned",
            current.get("unit") or "-",
            current.get("valid_from") or "-",
            d["last_docked"] or "never",
            str(d["recordings"]),
            "OVERDUE" if d["overdue"] else "",
        )
    out.print(table)


@device.command("show")
@click.argument("serial")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def device_show(ctx: click.Context, serial: str, as_json: bool) -> None:
    """One camera's assignment history and resolved timeline."""
    with service_for(ctx, write=False) as service:
        found = [d for d in service.devices() if d.serial == serial]
    if not found:
        raise UsageError(f"no device {serial!r} (see dockd device list)")
    status = found[0]
    periods: list[dict[str, Any]] = [
        {
            "from": isoformat_utc(p.start),
            "to": isoformat_utc(p.end) if p.end else None,
            "officer": p.assignment.officer if p.assignment else None,
            "unit": p.assignment.unit if p.assignment else None,
            "assignment": p.assignment.id if p.assignment else None,
        }
        for p in timeline(status.history)
    ]
    if as_json:
        click.echo(
            json.dumps(
                {**status.as_json(), "timeline": periods}, ensure_ascii=False, sort_keys=True
            )
        )
        return
    out.print(f"device {status.serial} {status.vendor} {status.model}".rstrip(), markup=False)
    table = Table(title="who had it when (newest registration wins)")
    for column in ("from", "to", "officer", "unit", "assignment"):
        table.add_column(column)
    for p in periods:
        table.add_row(
            p["from"], p["to"] or "open", p["officer"] or "nobody", p["unit"] or "-",
            str(p["assignment"] or "-"),
        )  # fmt: skip
    out.print(table)


def _assign(ctx: click.Context, serial: str, args: dict[str, Any]) -> None:
    payload = {"serial": serial, **args}

    result = change(
        ctx,
        "device.assign",
        payload,
        lambda service: perform(service, "device.assign", payload, local_actor()),
    )
    if ctx.params.get("as_json"):
        click.echo(json.dumps(result, ensure_ascii=False, sort_keys=True))
        return
    a = result["assignment"]
    who = f"{a['officer']} ({a['unit']})" if a["officer"] else "nobody (returned to the pool)"
    until = a["valid_to"] or "further notice"
    out.print(
        f"assignment {a['id']}: {serial} → {who} from {a['valid_from']} until {until}; "
        f"{len(result['reattributed'])} recording(s) re-attributed",
        markup=False,
    )


_FROM = click.option("--from", "valid_from", default=None, help="Start (UTC; default now).")
_TO = click.option("--to", "valid_to", default=None, help="End, exclusive (UTC; default open).")
_REASON = click.option("--reason", default=None, help="Why (kept in the log entry).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


@device.command("assign")
@click.argument("serial")
@click.option("--officer", required=True, help="Officer number (警号).")
@click.option("--unit", required=True, help="Unit or squad.")
@click.option("--number", "device_number", default=None, help="Agency device number.")
@_FROM
@_TO
@_REASON
@_JSON
@click.pass_context
def device_assign(
    ctx: click.Context,
    serial: str,
    officer: str,
    unit: str,
    device_number: str | None,
    valid_from: str | None,
    valid_to: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Assign camera SERIAL to an officer and unit for a period.

    Recordings get the officer and unit whose assignment covered their
    recording time; recordings already ingested are re-attributed. Earlier
    assignments stay as history; for an overlapping period the newest wins.
    """
    _assign(
        ctx,
        serial,
        {
            "officer": officer,
            "unit": unit,
            "device_number": device_number,
            "valid_from": _utc(valid_from, "--from"),
            "valid_to": _utc(valid_to, "--to"),
            "reason": reason,
        },
    )


@device.command("unassign")
@click.argument("serial")
@_FROM
@_TO
@_REASON
@_JSON
@click.pass_context
def device_unassign(
    ctx: click.Context,
    serial: str,
    valid_from: str | None,
    valid_to: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Return camera SERIAL to the pool: nobody carries it in the period."""
    _assign(
        ctx,
        serial,
        {
            "officer": None,
            "unit": None,
            "device_number": None,
            "valid_from": _utc(valid_from, "--from"),
            "valid_to": _utc(valid_to, "--to"),
            "reason": reason,
        },
    )
