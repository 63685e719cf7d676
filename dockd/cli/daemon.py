"""`dockd run`, `dockd status`, `dockd doctor`: the service and its health."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.table import Table

from dockd import logs
from dockd.cli.common import change, out
from dockd.config import Config
from dockd.progress import size_text
from dockd.runner.client import DaemonUnavailable

RUN_HELP = """\b
Exit codes:
  0  stopped on SIGTERM/SIGINT after finishing or parking every session
  2  configuration error
  4  the state directory is locked by another dockd
"""

STATUS_HELP = """\b
Exit codes:
  0  the daemon answered
  1  no daemon is running (nothing listens on its socket)
"""


@click.command(epilog=RUN_HELP)
@click.option("--no-udev", is_flag=True, help="Do not watch udev (drop folder and socket only).")
@click.pass_context
def run(ctx: click.Context, no_udev: bool) -> None:
    """Run the dock service: udev, ingest workers, scheduler, socket (systemd Type=notify)."""
    from dockd.runner.daemon import Daemon

    config: Config = ctx.obj
    parent = ctx.parent.params if ctx.parent else {}
    # A service logs its info events (session.done, …) whatever -v says.
    level = "info" if parent.get("verbose") and config.log.level != "debug" else config.log.level
    logs.configure(level, config.log.format)
    daemon = Daemon(
        config, parent.get("config_path"), udev=not no_udev, state_dir=parent.get("state_dir")
    )
    sys.exit(daemon.run())


def _slot_line(slot: dict[str, Any]) -> str:
    state = slot["state"]
    if state in ("copying", "scanning") and slot["files_total"]:
        rate = f", {size_text(int(slot['rate_bps']))}/s" if slot["rate_bps"] else ""
        return (
            f"{state} {slot['files_done']}/{slot['files_total']} files, "
            f"{size_text(slot['bytes_done'])} of {size_text(slot['bytes_total'])}{rate}"
        )
    if state == "error":
        return f"error: {slot['error']}"
    if state == "waiting for upload":
        counts = slot.get("counts") or {}
        return (
            f"waiting for upload: {counts.get('ingested', 0)} ingested, "
            f"{counts.get('waiting_for_upload', 0)} kept on the camera until the bucket "
            "holds them; leave it docked"
        )
    if state == "done" and slot.get("counts"):
        counts = slot["counts"]
        return f"done: {counts.get('ingested', 0)} ingested, {counts.get('wiped', 0)} cleared"
    return str(state)


@click.command(epilog=STATUS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Live state of every dock slot and the recent sessions (asks the running daemon)."""
    try:
        data = change(ctx, "status", {}, timeout=10.0)  # daemon_only: no local fallback
    except DaemonUnavailable as exc:
        if as_json:
            click.echo(json.dumps({"running": False, "error": str(exc)}))
        else:
            click.echo(f"dockd is not running: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps({"running": True, **data}, ensure_ascii=False, sort_keys=True))
        return
    d = data["daemon"]
    out.print(
        f"dockd {d['version']} running since {d['started_at']} (pid {d['pid']}), "
        f"{d['workers']} worker(s), {d['waiting']} camera(s) waiting",
        markup=False,
    )
    table = Table(title="slots")
    for column in ("slot", "serial", "profile", "state", "since"):
        table.add_column(column, overflow="fold")
    for slot in data["slots"]:
        table.add_row(
            slot["slot"], slot["serial"], slot["profile"], _slot_line(slot), slot["since"]
        )
    out.print(table)
    if data["recent"]:
        recent = Table(title="recent sessions")
        for column in ("session", "serial", "slot", "state", "ingested", "ended"):
            recent.add_column(column)
        for s in data["recent"]:
            recent.add_row(
                str(s["session"]), s["serial"], s["slot"], s["state"],
                str(s["counts"].get("ingested", 0)), s["ended_at"],
            )  # fmt: skip
        out.print(recent)
    replication = data.get("replication")
    if replication:
        line = (
            f"replication to {replication['bucket']}: {replication['queue']:,} waiting, "
            f"{replication['verified']:,} verified"
        )
        if replication.get("oldest_pending_hours") is not None:
            line += f", oldest {replication['oldest_pending_hours']} h"
        if replication.get("bytes_per_second"):
            line += f", {size_text(replication['bytes_per_second'])}/s"
        out.print(line, markup=False)
        for name in ("problem", "last_error"):
            if replication.get(name):
                out.print(f"  {name.replace('_', ' ')}: {replication[name]}", markup=False)
    if data.get("exports"):
        exports = Table(title="exports")
        for column in ("export", "by", "state", "discs", "bytes", "since"):
            exports.add_column(column, overflow="fold")
        for e in data["exports"]:
            state = f"error: {e['error']}" if e["state"] == "error" else e["state"]
            if e["state"] == "running" and e["disc"]:
                state += f" ({e['disc']})"
            exports.add_row(
                e["key"], e["by"] or "-", state, f"{e['discs_done']}/{e['discs_total']}",
                f"{size_text(e['bytes_done'])} of {size_text(e['bytes_total'])}", e["since"],
            )  # fmt: skip
        out.print(exports)


DOCTOR_HELP = """\b
Exit codes:
  0  nothing to fix (warnings may be printed)
  1  something must be fixed; each problem says how
"""


@click.command(epilog=DOCTOR_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of checks.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check this host: ffprobe, state directory, key, unit, rules, clock, mounting."""
    from dockd import doctor as checks
    from dockd.clock import SystemClock

    config: Config = ctx.obj
    parent = ctx.parent.params if ctx.parent else {}
    results = checks.run_checks(config, clock=SystemClock(), config_path=parent.get("config_path"))
    if as_json:
        click.echo(json.dumps(checks.report_json(results), ensure_ascii=False, sort_keys=True))
    else:
        out.print(checks.render_text(results), markup=False, end="")
    sys.exit(checks.exit_code(results))
