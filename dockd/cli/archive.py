"""`dockd export …` and `dockd verify-disc`: archival discs (R5) a clerk can check for years."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dockd.archive.check import verify_disc
from dockd.archive.iso import find_burners
from dockd.archive.plan import DiscPlan
from dockd.cli.common import (
    change,
    err,
    local_actor,
    out,
    progress_bar,
    service_for,
    wants_bar,
)
from dockd.config import Config
from dockd.errors import DockdError, UsageError
from dockd.progress import NULL_METER
from dockd.retention.policy import TIERS
from dockd.runner.client import request, socket_path
from dockd.runner.operations import Host, perform
from dockd.runner.operations import export_plan as plan_of
from dockd.service import Service


def _selection(
    tier: str, cases: tuple[str, ...], not_exported: bool, media: str, copies: int
) -> dict[str, Any]:
    return {
        "tier": None if tier == "any" else tier,
        "cases": list(cases),
        "not_exported": not_exported,
        "media": media,
        "copies": copies,
    }


def _plan(service: Service, selection: dict[str, Any]) -> DiscPlan:
    return plan_of(service, selection)  # the same rule as export build's (operations.py)


def _print_plan(plan: DiscPlan) -> None:
    table = Table(
        title=f"{plan.per_copy} disc(s) × {plan.copies} cop{'y' if plan.copies == 1 else 'ies'} "
        f"on {plan.medium.name} ({plan.medium.usable:,} usable bytes each)"
    )
    for column in ("disc", "copy", "recordings", "used", "fill"):
        table.add_column(column)
    for d in plan.discs:
        table.add_row(
            str(d.number), str(d.copy), str(len(d.recordings)), f"{d.used:,}",
            f"{d.used / plan.medium.usable:.0%}",
        )  # fmt: skip
    out.print(table)


_SELECT = [
    click.option("--media", required=True, help="dvd, bd25, bd50, bd100, or a size (700M, 4.7G)."),
    click.option(
        "--tier",
        type=click.Choice([*TIERS, "any"]),
        default="permanent",
        show_default=True,
        help="Which recordings (R5: the long-term ones).",
    ),
    click.option("--case", "cases", multiple=True, help="Only recordings of this case."),
    click.option("--not-exported", is_flag=True, help="Only recordings on no disc yet."),
    click.option("--copies", type=int, default=1, show_default=True, help="Identical disc sets."),
]


def _selected(f: Any) -> Any:
    for option in reversed(_SELECT):
        f = option(f)
    return f


@click.group()
def export() -> None:
    """Archival discs: plan, build ISO images (BagIt inside), burn, list."""


@export.command("plan")
@_selected
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_plan(
    ctx: click.Context,
    media: str,
    tier: str,
    cases: tuple[str, ...],
    not_exported: bool,
    copies: int,
    as_json: bool,
) -> None:
    """Which recordings go on which disc (stable: the same selection, the same discs)."""
    selection = _selection(tier, cases, not_exported, media, copies)
    with service_for(ctx.find_root(), write=False) as service:
        plan = _plan(service, selection)
    if as_json:
        click.echo(json.dumps({"selection": selection, **plan.as_json()}, sort_keys=True))
    else:
        _print_plan(plan)


BUILD_EXIT = """\b
Exit codes:
  0  every disc image built (or already built and intact)
  2  usage error (empty selection, a file larger than the medium, …)
  4  another dockd process (not the daemon) holds the state directory
With the daemon running, the daemon builds the discs (in its worker, under its
lock): this command waits for it, and `dockd status` shows the progress.
"""


@export.command("build", epilog=BUILD_EXIT)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="A plan saved by `export plan --json` (instead of the selection options).",
)
@click.option("--media", default=None, help="dvd, bd25, bd50, bd100, or a size (700M, 4.7G).")
@click.option(
    "--tier",
    type=click.Choice([*TIERS, "any"]),
    default="permanent",
    show_default=True,
    help="Which recordings (R5: the long-term ones).",
)
@click.option("--case", "cases", multiple=True, help="Only recordings of this case.")
@click.option("--not-exported", is_flag=True, help="Only recordings on no disc yet.")
@click.option("--copies", type=int, default=1, show_default=True, help="Identical disc sets.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option(
    "--request",
    "request_id",
    type=int,
    required=True,
    help="The approved export request (dockd request export …; dockd approve REQ).",
)
@click.option("--approved-by", default=None, hidden=True, help="No longer taken: see --request.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_build(
    ctx: click.Context,
    plan_file: Path | None,
    media: str | None,
    tier: str,
    cases: tuple[str, ...],
    not_exported: bool,
    copies: int,
    out_dir: Path,
    request_id: int,
    approved_by: str | None,
    as_json: bool,
) -> None:
    """Record an approved export and build one ISO image per disc in OUT.

    The discs are those of a saved plan (--plan), or of the selection
    options. A saved plan must still be what its selection gives now: if
    the catalog changed since, plan again. --request names the approved
    export request (R6) that covers every recording of the discs; its
    approver and reason are those of the export.
    """
    if approved_by is not None:
        raise UsageError(
            "--approved-by is no longer taken: an export needs an approved request. Ask with "
            "`dockd request export IDS|--case NO --reason …`, have a supervisor run "
            "`dockd approve REQ --note …`, then `dockd export build --request REQ`"
        )
    saved: dict[str, Any] | None = None
    if plan_file is not None:
        try:
            saved = json.loads(plan_file.read_text(encoding="utf-8"))
            selection = dict(saved["selection"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{plan_file}: not a plan from `dockd export plan --json`: {exc}"
            ) from None
    elif media is None:
        raise UsageError("give --media (and the selection), or --plan FILE")
    else:
        selection = _selection(tier, cases, not_exported, media, copies)
    args = {
        "selection": selection,
        "saved_discs": None if saved is None else saved.get("discs"),
        "plan_file": None if plan_file is None else str(plan_file),
        "out": str(out_dir.absolute()),
        "request": request_id,
    }
    result = _long_request(ctx.find_root(), "export.build", args, as_json)
    _report_build(int(result["export"]), result["discs"], as_json)


@export.command("resume", epilog=BUILD_EXIT)
@click.argument("export_id", type=int)
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_resume(ctx: click.Context, export_id: int, out_dir: Path, as_json: bool) -> None:
    """Build what an interrupted `export build` left unbuilt (built images are re-checked)."""
    args = {"export": export_id, "out": str(out_dir.absolute())}
    result = _long_request(ctx.find_root(), "export.resume", args, as_json)
    _report_build(export_id, result["discs"], as_json)


def _long_request(ctx: click.Context, op: str, args: dict[str, Any], as_json: bool) -> Any:
    """`op` through the daemon (its progress polled from `dockd status`), or here."""
    config: Config = ctx.obj
    bar = wants_bar(as_json)
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=err, transient=True, disable=not bar) as progress:
        watcher = _DaemonWatcher(config, progress) if bar else None

        def here(service: Service) -> Any:
            if watcher is not None:
                watcher.stop()  # no daemon: this process shows its own progress
            return perform(Host(service, _BarTracker(progress)), op, args, local_actor())

        try:
            return change(ctx, op, args, here)
        finally:
            if watcher is not None:
                watcher.stop()


class _BarTracker:
    """An export's progress on this terminal: one bar per disc."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None
        self.size = 0

    def disc(self, label: str, size: int) -> None:
        self.task, self.size = self.progress.add_task(label, total=size), size

    def advance(self, n: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def done(self, label: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.size)


class _DaemonWatcher:
    """While the daemon builds, show the newest running export of `dockd status`."""

    def __init__(self, config: Config, progress: Progress) -> None:
        self.config = config
        self.progress = progress
        self.task: TaskID | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="export-progress", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            try:
                exports = request(socket_path(self.config), "status", timeout=5.0)["exports"]
            except (DockdError, KeyError, TypeError):
                continue
            running = [e for e in exports if e["state"] == "running"]
            if not running:
                continue
            e = running[-1]
            text = f"{e['key']}: disc {e['discs_done']}/{e['discs_total']}"
            if self.task is None:
                self.task = self.progress.add_task(text, total=e["bytes_total"])
            self.progress.update(self.task, description=text, completed=e["bytes_done"])

    def stop(self) -> None:
        self._stop.set()


def _report_build(export_id: int, results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"export": export_id, "discs": results}, sort_keys=True))
        return
    for r in results:
        state = "built" if r["built"] else "already built, intact"
        out.print(f"{r['label']}: {state}: {r['image']} sha256 {r['sha256']}", markup=False)


@export.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def export_list(ctx: click.Context, as_json: bool) -> None:
    """Every export, its approval, and its discs (image hash, burned or not)."""
    with service_for(ctx.find_root(), write=False) as service:
        rows = service.exports()
    if as_json:
        click.echo(json.dumps([e.as_json() for e in rows], ensure_ascii=False, sort_keys=True))
        return
    table = Table()
    for column in ("disc", "export", "recordings", "image sha256", "built", "burned"):
        table.add_column(column, overflow="fold")
    for e in rows:
        for d in e.discs:
            table.add_row(
                d.label, f"{e.id} ({e.approved_by}: {e.reason})",
                str(len(d.recordings)), (d.image_sha256 or "-")[:16],
                d.built_at or "-",
                f"{d.burned_at} on {d.drive}" if d.burned_at else "-",
            )  # fmt: skip
    out.print(table)


@export.command("burn")
@click.argument("label")
@click.option("--images", type=click.Path(path_type=Path, file_okay=False), required=True)
@click.option("--drive", default=None, help="The burner (default: the only one found).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def export_burn(
    ctx: click.Context, label: str, images: Path, drive: str | None, as_json: bool
) -> None:
    """Burn disc LABEL's image, read the disc back and compare; recorded and logged."""
    if drive is None:
        burners = find_burners()
        if len(burners) != 1:
            raise UsageError(
                "no burner found: the images are ready to burn elsewhere"
                if not burners
                else f"several burners ({', '.join(burners)}): choose one with --drive"
            )
        drive = burners[0]
    args = {"label": label, "images": str(images.absolute()), "drive": drive}
    result = change(ctx.find_root(), "export.burn", args)
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        out.print(
            f"{label}: burned on {drive}, read back: {'identical' if result['ok'] else 'DIFFERS'}",
            markup=False,
        )
    sys.exit(0 if result["ok"] else 1)


VERIFY_EXIT = """\b
Exit codes:
  0  the disc is intact, its proofs hold, and it holds what the catalog says
  1  problems (each listed)
  2  usage error
"""


@click.command("verify-disc", epilog=VERIFY_EXIT)
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--no-catalog", is_flag=True, help="Check the disc alone (no state directory).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def verify_disc_command(ctx: click.Context, path: Path, no_catalog: bool, as_json: bool) -> None:
    """Check a disc image (read with xorriso, no mount) or a mounted disc or folder."""
    catalog: list[dict[str, str]] = []
    with progress_bar(wants_bar(as_json)) as bar:
        progress = bar or NULL_METER
        if no_catalog:
            report = verify_disc(path, None, progress=progress)
        else:
            # Beside its catalog: this dock's keys, not the disc's own keys.txt, are trusted.
            with service_for(ctx.find_root(), write=False) as service:
                keys = [k.to_text() for k in service.trusted_keys()] or None
                report = verify_disc(path, keys, progress=progress)
                catalog = service.check_disc_against_catalog(report, path, progress)
    problems = [p.as_json() for p in report.problems] + catalog
    ok = not problems
    if as_json:
        click.echo(json.dumps({**report.as_json(), "problems": problems, "ok": ok}, sort_keys=True))
    else:
        out.print(f"disc {report.label}: {len(report.recordings)} recording(s)", markup=False)
        for p in problems:
            out.print(f"  {p['kind']}: {p['where']}: {p['detail']}", markup=False)
        out.print("verify-disc: OK" if ok else f"verify-disc: {len(problems)} problem(s)")
    sys.exit(0 if ok else 1)
